"""SQLAlchemy models of the relational metadata.

The message backends' tables (app.messages.sql_tables, app.messages.dual_tables) share ``Base.metadata`` but
belong to their backends.
"""
from models.base import Base
from models.events import (
    event_group_offsets,
    event_group_pending,
    event_outbox,
    event_partitions,
    event_relay_lease,
    event_stream,
)
from models.gateway import gateway_identifies, gateway_sessions
from models.metadata import (
    AccessToken,
    Channel,
    DirectChannel,
    Guild,
    IdSlotLease,
    Member,
    MemberRole,
    MetadataVersion,
    PermissionOverwrite,
    Role,
    Thread,
    ThreadMember,
    Token,
    User,
    Webhook,
)
from models.moderation import AuditLogEntry, Ban

__all__ = [
    "AccessToken", "AuditLogEntry", "Ban", "Base", "Channel", "DirectChannel", "Guild", "IdSlotLease", "Member",
    "MemberRole",
    "MetadataVersion",
    "PermissionOverwrite", "Role", "Thread", "ThreadMember", "Token", "User", "Webhook",
    "event_group_offsets", "event_group_pending", "event_outbox", "event_partitions", "event_relay_lease",
    "event_stream", "gateway_identifies", "gateway_sessions",
]
