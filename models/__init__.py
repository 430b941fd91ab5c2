"""SQLAlchemy models: the relational metadata and the tables of the SQL message backend."""
from models.base import Base
from models.messages import ChannelBucket, MessageNonce, PinnedMessage, Reaction, StoredMessage
from models.metadata import (
    Channel,
    Guild,
    IdSlotLease,
    Member,
    MemberRole,
    MetadataVersion,
    PermissionOverwrite,
    Role,
    Token,
    User,
)
from models.migration import DualWriteEntry

__all__ = [
    "Base", "Channel", "Guild", "IdSlotLease", "Member", "MemberRole", "MetadataVersion", "PermissionOverwrite",
    "Role", "Token", "User",
    "ChannelBucket", "MessageNonce", "PinnedMessage", "Reaction", "StoredMessage", "DualWriteEntry",
]
