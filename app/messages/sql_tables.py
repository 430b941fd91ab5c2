"""Tables of the SQL message backend (app.messages.sql), in Discord's layout.

The backend owns them, as each backend owns its storage; they share ``models.base.Base.metadata`` with the
relational models so Alembic sees one schema (migrations/env.py imports this module).

Messages are keyed ``(channel_id, bucket, message_id)`` with ``bucket = app.ids.bucket_of(message_id)``, so one
channel's 10-day window is one contiguous range of the primary key, as it is one partition in ScyllaDB.
"""
from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from models.base import Base, Snowflake, UTCDateTime


class SnowflakeList(TypeDecorator):
    """A tuple of snowflakes as compact JSON text; the common empty tuple is stored as NULL."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return json.dumps(list(value), separators=(",", ":")) if value else None

    def process_result_value(self, value, dialect):
        return tuple(json.loads(value)) if value else ()


class StoredMessage(Base):
    __tablename__ = "messages"
    # The author index (MessageStore.messages_by_author): one author's messages in a guild, by time, in one
    # range of this index whatever the size of the guild's history. DM messages (no guild) are in it as NULLs.
    __table_args__ = (Index("ix_messages_guild_author", "guild_id", "author_id", "message_id"),)

    channel_id: Mapped[int] = mapped_column(Snowflake, primary_key=True, autoincrement=False)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    message_id: Mapped[int] = mapped_column(Snowflake, primary_key=True, autoincrement=False)
    author_id: Mapped[int] = mapped_column(Snowflake)
    content: Mapped[str] = mapped_column(Text)
    type: Mapped[int] = mapped_column(Integer)
    flags: Mapped[int] = mapped_column(Integer)
    tts: Mapped[bool] = mapped_column(Boolean)
    mention_everyone: Mapped[bool] = mapped_column(Boolean)
    mentions: Mapped[tuple[int, ...]] = mapped_column(SnowflakeList, nullable=True)
    mention_roles: Mapped[tuple[int, ...]] = mapped_column(SnowflakeList, nullable=True)
    embeds_json: Mapped[str | None] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(Text)
    pinned: Mapped[bool] = mapped_column(Boolean)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reference_message_id: Mapped[int | None] = mapped_column(Snowflake)
    reference_channel_id: Mapped[int | None] = mapped_column(Snowflake)
    reference_guild_id: Mapped[int | None] = mapped_column(Snowflake)
    attachments_json: Mapped[str | None] = mapped_column(Text)
    components_json: Mapped[str | None] = mapped_column(Text)
    guild_id: Mapped[int | None] = mapped_column(Snowflake)
    webhook_id: Mapped[int | None] = mapped_column(Snowflake)
    webhook_username: Mapped[str | None] = mapped_column(Text)
    webhook_avatar_url: Mapped[str | None] = mapped_column(Text)


class ChannelBucket(Base):
    """The buckets that hold (or held) a channel's messages, so a sparse channel can skip its empty windows."""

    __tablename__ = "channel_buckets"

    channel_id: Mapped[int] = mapped_column(Snowflake, primary_key=True, autoincrement=False)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)


class Reaction(Base):
    """One user's reaction. ``reacted_at`` is kept from the first add, and orders the emojis by first use."""

    __tablename__ = "reactions"

    channel_id: Mapped[int] = mapped_column(Snowflake, primary_key=True, autoincrement=False)
    message_id: Mapped[int] = mapped_column(Snowflake, primary_key=True, autoincrement=False)
    emoji: Mapped[str] = mapped_column(String(128), primary_key=True)
    user_id: Mapped[int] = mapped_column(Snowflake, primary_key=True, autoincrement=False)
    reacted_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PinnedMessage(Base):
    __tablename__ = "pins"
    # Pages of pins are read newest-pinned first.
    __table_args__ = (Index("ix_pins_channel_id_pinned_at", "channel_id", "pinned_at"),)

    channel_id: Mapped[int] = mapped_column(Snowflake, primary_key=True, autoincrement=False)
    message_id: Mapped[int] = mapped_column(Snowflake, primary_key=True, autoincrement=False)
    pinned_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MessageNonce(Base):
    """An author's claim on a nonce in a channel (``enforce_nonce``), void once ``expires_at`` has passed."""

    __tablename__ = "message_nonces"

    channel_id: Mapped[int] = mapped_column(Snowflake, primary_key=True, autoincrement=False)
    author_id: Mapped[int] = mapped_column(Snowflake, primary_key=True, autoincrement=False)
    nonce: Mapped[str] = mapped_column(Text, primary_key=True)
    message_id: Mapped[int] = mapped_column(Snowflake)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
