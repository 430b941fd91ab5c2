"""Moderation records: a guild's bans and its audit log."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, Snowflake, UTCDateTime
from models.metadata import User


class Ban(Base):
    """A user banned from a guild: they are not a member and cannot be added again until unbanned. The user need
    not exist as a member (Discord bans any user id), so there is no foreign key to members."""

    __tablename__ = "bans"

    guild_id: Mapped[int] = mapped_column(ForeignKey("guilds.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    reason: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(lazy="joined")


class AuditLogEntry(Base):
    """One entry of a guild's audit log (Discord's audit log entry object). ``changes`` is a JSON list of
    ``{key, old_value, new_value}``; ``options`` a JSON object or NULL. Entries are read newest first by id."""

    __tablename__ = "audit_log_entries"
    # Pages filtered by who acted or by the action stay one index range each.
    __table_args__ = (
        Index("ix_audit_log_entries_guild_user", "guild_id", "user_id", "id"),
        Index("ix_audit_log_entries_guild_action", "guild_id", "action_type", "id"),
    )

    guild_id: Mapped[int] = mapped_column(ForeignKey("guilds.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[int] = mapped_column(Snowflake, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(Snowflake)
    action_type: Mapped[int] = mapped_column(Integer)
    target_id: Mapped[int | None] = mapped_column(Snowflake)
    changes: Mapped[str | None] = mapped_column(Text)
    options: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(String(512))
