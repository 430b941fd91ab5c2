"""Domain values shared by the services, the read cache and the serializers: plain data, no I/O."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from models import User


@dataclass(frozen=True)
class UserSnapshot:
    """What requests need of a user: who it is and how it is shown. Safe to share between requests."""

    id: int
    username: str
    global_name: str | None
    avatar: str | None
    bot: bool

    @classmethod
    def of(cls, user: User) -> UserSnapshot:
        return cls(id=user.id, username=user.username, global_name=user.global_name, avatar=user.avatar,
                   bot=user.bot)


@dataclass(frozen=True)
class ChannelRef:
    """What the message services need of a channel; unlike the model, safe to share between requests."""

    id: int
    guild_id: int | None
    type: int

    @classmethod
    def of(cls, channel) -> ChannelRef:
        return cls(id=channel.id, guild_id=channel.guild_id, type=channel.type)


@dataclass(frozen=True)
class ChannelPermissions:
    """A user's permissions in a channel, valid ``until`` a moment (a timeout's end) or, when None, until the
    metadata changes."""

    channel: ChannelRef
    permissions: int
    until: datetime | None = None


@dataclass
class KeptToken:
    """A token as requests check it, with its user. ``last_used_at`` is updated in place as it is written."""

    secret_sha256: bytes
    revoked: bool
    last_used_at: datetime | None
    user: UserSnapshot
