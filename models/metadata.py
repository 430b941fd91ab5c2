"""Relational metadata: users and their tokens, guilds, roles, members, channels and overwrites."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, Snowflake, UTCDateTime


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Snowflake, primary_key=True, autoincrement=False)
    username: Mapped[str] = mapped_column(String(32), unique=True)
    global_name: Mapped[str | None] = mapped_column(String(32))
    avatar: Mapped[str | None] = mapped_column(String(64))
    bot: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: The privileged gateway intents (GUILD_MEMBERS, GUILD_PRESENCES, MESSAGE_CONTENT bits) an admin allowed this
    #: user to identify with (``flask users intents``); the gateway closes 4014 for the others.
    privileged_intents: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class Token(Base):
    """An API token. Only the SHA-256 of its secret is kept; the secret is shown once, at creation."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Snowflake, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    secret_sha256: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(lazy="joined")


class AccessToken(Base):
    """An OAuth2-style access token: ``user_id`` consents to ``client_id`` (a bot, which is its own application)
    acting for them within ``scopes`` (space-separated) until ``expires_at``. Only the SHA-256 of its secret is
    kept, as for API tokens; it is not an API token and authenticates no request by itself."""

    __tablename__ = "access_tokens"

    id: Mapped[int] = mapped_column(Snowflake, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    scopes: Mapped[str] = mapped_column(String(200))
    secret_sha256: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Guild(Base):
    __tablename__ = "guilds"

    id: Mapped[int] = mapped_column(Snowflake, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(100))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)


class Role(Base):
    """A guild role. The @everyone role has the guild's own id."""

    __tablename__ = "roles"

    id: Mapped[int] = mapped_column(Snowflake, primary_key=True, autoincrement=False)
    guild_id: Mapped[int] = mapped_column(ForeignKey("guilds.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    permissions: Mapped[int] = mapped_column(BigInteger, default=0)
    position: Mapped[int] = mapped_column(Integer, default=0)
    color: Mapped[int] = mapped_column(Integer, default=0)
    hoist: Mapped[bool] = mapped_column(Boolean, default=False)
    mentionable: Mapped[bool] = mapped_column(Boolean, default=False)


class Member(Base):
    __tablename__ = "members"

    guild_id: Mapped[int] = mapped_column(ForeignKey("guilds.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)
    nick: Mapped[str | None] = mapped_column(String(32))
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime)
    communication_disabled_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Voice state a moderator sets (PATCH .../members/{id} ``mute``/``deaf``): stored and served back.
    mute: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    deaf: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")

    user: Mapped[User] = relationship(lazy="joined")


class MemberRole(Base):
    __tablename__ = "member_roles"
    __table_args__ = (
        ForeignKeyConstraint(
            ["guild_id", "user_id"], ["members.guild_id", "members.user_id"], ondelete="CASCADE",
            name="fk_member_roles_member",
        ),
    )

    guild_id: Mapped[int] = mapped_column(Snowflake, primary_key=True)
    user_id: Mapped[int] = mapped_column(Snowflake, primary_key=True)
    role_id: Mapped[int] = mapped_column(ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True, index=True)


class Channel(Base):
    __tablename__ = "channels"

    id: Mapped[int] = mapped_column(Snowflake, primary_key=True, autoincrement=False)
    guild_id: Mapped[int | None] = mapped_column(ForeignKey("guilds.id", ondelete="CASCADE"), index=True)
    type: Mapped[int] = mapped_column(Integer, default=0)
    name: Mapped[str] = mapped_column(String(100))
    topic: Mapped[str | None] = mapped_column(Text)
    position: Mapped[int] = mapped_column(Integer, default=0)
    parent_id: Mapped[int | None] = mapped_column(Snowflake)
    nsfw: Mapped[bool] = mapped_column(Boolean, default=False)
    rate_limit_per_user: Mapped[int] = mapped_column(Integer, default=0)
    last_message_id: Mapped[int | None] = mapped_column(Snowflake)
    #: Grows with every write to the channel's messages (app/read_cache.py).
    messages_version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    overwrites: Mapped[list[PermissionOverwrite]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="PermissionOverwrite.target_id",
    )


class DirectChannel(Base):
    """The two users of a DM channel (type 1), the lower id first, so that a pair has one channel at most."""

    __tablename__ = "dm_channels"
    __table_args__ = (UniqueConstraint("user_low_id", "user_high_id"),)

    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True)
    user_low_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    user_high_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)

    def other(self, user_id: int) -> int:
        return self.user_high_id if user_id == self.user_low_id else self.user_low_id


class PermissionOverwrite(Base):
    __tablename__ = "permission_overwrites"

    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True)
    target_id: Mapped[int] = mapped_column(Snowflake, primary_key=True)
    type: Mapped[int] = mapped_column(Integer)
    allow: Mapped[int] = mapped_column(BigInteger, default=0)
    deny: Mapped[int] = mapped_column(BigInteger, default=0)


class MetadataVersion(Base):
    """One row: a number that database triggers bump on every write to the metadata that workers keep in
    memory (see migrations/versions/20261201_0005_metadata_version.py and app/read_cache.py)."""

    __tablename__ = "metadata_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger)


class IdSlotLease(Base):
    """Which process holds which snowflake worker/process slot, until when (see app/id_slots.py)."""

    __tablename__ = "id_slot_leases"
    __table_args__ = (UniqueConstraint("holder"),)

    slot: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Webhook(Base):
    """An incoming webhook (type 1) of a guild text channel. Only the SHA-256 of its token is kept, as for API
    tokens: the token is shown once, when the webhook is created."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Snowflake, primary_key=True, autoincrement=False)
    type: Mapped[int] = mapped_column(Integer, default=1)
    guild_id: Mapped[int] = mapped_column(ForeignKey("guilds.id", ondelete="CASCADE"), index=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"), index=True)
    #: Who created it; null once that user is gone (the webhook stays, as on Discord).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(80))
    token_sha256: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Thread(Base):
    """What a thread channel (type 10, 11 or 12; its row in ``channels`` has the parent's id in ``parent_id``)
    holds beyond a channel: Discord's ``thread_metadata`` and counters.

    ``archived`` is what was last written; a thread whose last activity (its creation, its newest message or its
    last change of archive state) is older than ``auto_archive_duration`` minutes is archived too, whether or not
    anyone wrote that down yet (app.services.threads): no scheduler has to archive threads on time. The table is
    not watched by the metadata version's triggers: its counters change with traffic, and nothing of it is kept
    in the workers' memory.
    """

    __tablename__ = "threads"

    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True)
    guild_id: Mapped[int] = mapped_column(ForeignKey("guilds.id", ondelete="CASCADE"), index=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"), index=True)
    owner_id: Mapped[int] = mapped_column(Snowflake)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    auto_archive_duration: Mapped[int] = mapped_column(Integer, default=1440)
    archive_timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    invitable: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    total_message_sent: Mapped[int] = mapped_column(Integer, default=0)
    member_count: Mapped[int] = mapped_column(Integer, default=0)
    #: The forum tags applied, a JSON array of snowflake strings.
    applied_tags: Mapped[str] = mapped_column(Text, default="[]")
    flags: Mapped[int] = mapped_column(Integer, default=0)


class ThreadMember(Base):
    """A user who joined a thread. Watched by the metadata version's triggers: who may see a private thread
    depends on it, and workers keep users' permissions in channels."""

    __tablename__ = "thread_members"

    thread_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)
    join_timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    flags: Mapped[int] = mapped_column(Integer, default=0)
