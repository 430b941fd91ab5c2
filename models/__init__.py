"""SQLAlchemy models: the relational metadata and the tables of the SQL message backend."""
from models.base import Base
from models.events import (
    event_group_offsets, event_group_pending, event_outbox, event_partitions, event_relay_lease, event_stream,
)
from models.migration import DualWriteEntry
from models.messages import ChannelBucket, MessageNonce, PinnedMessage, Reaction, StoredMessage
from models.metadata import (
    Channel, Guild, IdSlotLease, Member, MemberRole, MetadataVersion, PermissionOverwrite, Role, Token, User,
)

__all__ = [
    "Base", "Channel", "Guild", "IdSlotLease", "Member", "MemberRole", "MetadataVersion", "PermissionOverwrite",
    "Role", "Token", "User",
    "ChannelBucket", "MessageNonce", "PinnedMessage", "Reaction", "StoredMessage", "DualWriteEntry",
    "event_group_offsets", "event_group_pending", "event_outbox", "event_partitions", "event_relay_lease",
    "event_stream",
]
