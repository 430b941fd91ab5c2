"""The domain's plain values that more than one layer reads: the names of Discord's numbers (channel and message
types), and the snapshots of users, channels, permissions and tokens that requests share.

Pure and stdlib-only, so every layer (stores, services, schemas, the read cache, the CLI) may import it. The values are
Discord's (API v10, "Channel Types" and "Message Types" in Discord's developer documentation); they are stored
and sent on the wire as they are, so a member compares and serializes as its plain integer. The permission bits
and overwrite types live with the permission algorithm, in ``app.auth.permissions``.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class ChannelType(enum.IntEnum):
    GUILD_TEXT = 0
    DM = 1
    GUILD_VOICE = 2
    GROUP_DM = 3
    GUILD_CATEGORY = 4
    GUILD_ANNOUNCEMENT = 5
    ANNOUNCEMENT_THREAD = 10
    PUBLIC_THREAD = 11
    PRIVATE_THREAD = 12
    GUILD_STAGE_VOICE = 13
    GUILD_DIRECTORY = 14
    GUILD_FORUM = 15
    GUILD_MEDIA = 16


class MessageType(enum.IntEnum):
    DEFAULT = 0
    RECIPIENT_ADD = 1
    RECIPIENT_REMOVE = 2
    CALL = 3
    CHANNEL_NAME_CHANGE = 4
    CHANNEL_ICON_CHANGE = 5
    CHANNEL_PINNED_MESSAGE = 6
    USER_JOIN = 7
    GUILD_BOOST = 8
    GUILD_BOOST_TIER_1 = 9
    GUILD_BOOST_TIER_2 = 10
    GUILD_BOOST_TIER_3 = 11
    CHANNEL_FOLLOW_ADD = 12
    GUILD_DISCOVERY_DISQUALIFIED = 14
    GUILD_DISCOVERY_REQUALIFIED = 15
    GUILD_DISCOVERY_GRACE_PERIOD_INITIAL_WARNING = 16
    GUILD_DISCOVERY_GRACE_PERIOD_FINAL_WARNING = 17
    THREAD_CREATED = 18
    REPLY = 19
    CHAT_INPUT_COMMAND = 20
    THREAD_STARTER_MESSAGE = 21
    GUILD_INVITE_REMINDER = 22
    CONTEXT_MENU_COMMAND = 23
    AUTO_MODERATION_ACTION = 24
    ROLE_SUBSCRIPTION_PURCHASE = 25
    INTERACTION_PREMIUM_UPSELL = 26
    STAGE_START = 27
    STAGE_END = 28
    STAGE_SPEAKER = 29
    STAGE_RAISE_HAND = 30
    STAGE_TOPIC = 31
    GUILD_APPLICATION_PREMIUM_SUBSCRIPTION = 32
    GUILD_INCIDENT_ALERT_MODE_ENABLED = 36
    GUILD_INCIDENT_ALERT_MODE_DISABLED = 37
    GUILD_INCIDENT_REPORT_RAID = 38
    GUILD_INCIDENT_REPORT_FALSE_ALARM = 39
    PURCHASE_NOTIFICATION = 44
    POLL_RESULT = 46


class MessageReferenceType(enum.IntEnum):
    """What a ``message_reference`` points at: a message replied to, or one forwarded."""

    DEFAULT = 0
    FORWARD = 1


#: Channels whose object carries a topic, a slow mode and a last message id.
TOPIC_CHANNEL_TYPES = frozenset({ChannelType.GUILD_TEXT, ChannelType.GUILD_ANNOUNCEMENT, ChannelType.GUILD_FORUM,
                                 ChannelType.GUILD_MEDIA})
#: Threads: channels inside a text, announcement, forum or media channel (their ``parent_id``).
THREAD_TYPES = frozenset({ChannelType.ANNOUNCEMENT_THREAD, ChannelType.PUBLIC_THREAD, ChannelType.PRIVATE_THREAD})
#: Channels whose threads are posts, each opened with a message (POST /channels/{id}/threads with ``message``).
POST_CHANNEL_TYPES = frozenset({ChannelType.GUILD_FORUM, ChannelType.GUILD_MEDIA})
#: Channels whose object carries a bitrate and a user limit.
VOICE_CHANNEL_TYPES = frozenset({ChannelType.GUILD_VOICE, ChannelType.GUILD_STAGE_VOICE})
#: What a guild channel may be created as; DMs, threads and directories come into being otherwise.
GUILD_CREATABLE_CHANNEL_TYPES = frozenset({
    ChannelType.GUILD_TEXT, ChannelType.GUILD_VOICE, ChannelType.GUILD_CATEGORY, ChannelType.GUILD_ANNOUNCEMENT,
    ChannelType.GUILD_STAGE_VOICE, ChannelType.GUILD_FORUM, ChannelType.GUILD_MEDIA})


@dataclass(frozen=True)
class UserSnapshot:
    """What requests need of a user: who it is and how it is shown. Safe to share between requests."""

    id: int
    username: str
    global_name: str | None
    avatar: str | None
    bot: bool

    @classmethod
    def of(cls, user) -> UserSnapshot:
        """The snapshot of a ``models.User`` row."""
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
        """The reference of a ``models.Channel`` row."""
        return cls(id=channel.id, guild_id=channel.guild_id, type=channel.type)


@dataclass(frozen=True)
class ChannelPermissions:
    """A user's permissions in a channel, valid ``until`` a moment (a timeout's end) or, when None, until the
    metadata changes."""

    channel: ChannelRef
    permissions: int
    until: datetime | None = None


@dataclass(frozen=True)
class ReadableChannels:
    """A member's view of a guild's channels: every channel by id, and those whose history they may read (VIEW_CHANNEL
    and READ_MESSAGE_HISTORY), valid ``until`` a moment (a timeout's end) or, when None, until the metadata
    changes."""

    channels: dict[int, ChannelRef]
    readable: frozenset[int]
    until: datetime | None = None


@dataclass
class KeptToken:
    """A token as requests check it, with its user. ``last_used_at`` is updated in place as it is written."""

    secret_sha256: bytes
    revoked: bool
    last_used_at: datetime | None
    user: UserSnapshot

#: The highest channel or role position, as Discord bounds it: the columns are 32-bit integers on every backend.
MAX_POSITION = 2**31 - 1
