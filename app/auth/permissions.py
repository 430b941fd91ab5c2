"""Discord permission bits and the resolution of a member's permissions in a guild channel.

Pure functions over integers: callers load the guild owner, the roles and the channel overwrites and pass
them in, so the rules can be tested exhaustively without a database. The algorithm follows the
"Permission Overwrites", "Implicit Permissions" and "Permissions For Timed Out Members" sections of
Discord's permissions page (https://discord.com/developers/docs/topics/permissions).
"""
from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


class Permission(enum.IntFlag):
    """Discord's permission bits (API v10). Bit 47 is unassigned: Discord retired it."""

    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_AUDIT_LOG = 1 << 7
    PRIORITY_SPEAKER = 1 << 8
    STREAM = 1 << 9
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    SEND_TTS_MESSAGES = 1 << 12
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    VIEW_GUILD_INSIGHTS = 1 << 19
    CONNECT = 1 << 20
    SPEAK = 1 << 21
    MUTE_MEMBERS = 1 << 22
    DEAFEN_MEMBERS = 1 << 23
    MOVE_MEMBERS = 1 << 24
    USE_VAD = 1 << 25
    CHANGE_NICKNAME = 1 << 26
    MANAGE_NICKNAMES = 1 << 27
    MANAGE_ROLES = 1 << 28
    MANAGE_WEBHOOKS = 1 << 29
    MANAGE_GUILD_EXPRESSIONS = 1 << 30
    USE_APPLICATION_COMMANDS = 1 << 31
    REQUEST_TO_SPEAK = 1 << 32
    MANAGE_EVENTS = 1 << 33
    MANAGE_THREADS = 1 << 34
    CREATE_PUBLIC_THREADS = 1 << 35
    CREATE_PRIVATE_THREADS = 1 << 36
    USE_EXTERNAL_STICKERS = 1 << 37
    SEND_MESSAGES_IN_THREADS = 1 << 38
    USE_EMBEDDED_ACTIVITIES = 1 << 39
    MODERATE_MEMBERS = 1 << 40
    VIEW_CREATOR_MONETIZATION_ANALYTICS = 1 << 41
    USE_SOUNDBOARD = 1 << 42
    CREATE_GUILD_EXPRESSIONS = 1 << 43
    CREATE_EVENTS = 1 << 44
    USE_EXTERNAL_SOUNDS = 1 << 45
    SEND_VOICE_MESSAGES = 1 << 46
    SET_VOICE_CHANNEL_STATUS = 1 << 48
    SEND_POLLS = 1 << 49
    USE_EXTERNAL_APPS = 1 << 50
    PIN_MESSAGES = 1 << 51
    BYPASS_SLOWMODE = 1 << 52

    # Every bit above (0..52 without 47); the unit tests check it against the members and discord.py.
    ALL = 0x1F7FFFFFFFFFFF
    # 0x637DE41 (104324673): the @everyone default of a new guild as published by the client libraries
    # (discord.js ``Permissions.DEFAULT``). Discord's docs give no value; newer bits such as
    # USE_APPLICATION_COMMANDS or the thread bits are left for guild owners to grant.
    DEFAULT_EVERYONE = (
        CREATE_INSTANT_INVITE | ADD_REACTIONS | STREAM | VIEW_CHANNEL | SEND_MESSAGES | SEND_TTS_MESSAGES
        | EMBED_LINKS | ATTACH_FILES | READ_MESSAGE_HISTORY | MENTION_EVERYONE | USE_EXTERNAL_EMOJIS
        | CONNECT | SPEAK | USE_VAD | CHANGE_NICKNAME
    )


class OverwriteType(enum.IntEnum):
    ROLE = 0
    MEMBER = 1


@dataclass(frozen=True)
class Overwrite:
    """A channel permission overwrite; ``target_id`` is a role id (the guild id for @everyone) or a user id."""

    target_id: int
    type: int
    allow: int
    deny: int


MAX_PERMISSIONS = 2**64 - 1

# Plain ints: ``~`` on an IntFlag member complements only the defined bits, which would silently drop
# bits this module does not know about yet.
_ALL = int(Permission.ALL)
_ADMINISTRATOR = int(Permission.ADMINISTRATOR)
_VIEW_CHANNEL = int(Permission.VIEW_CHANNEL)
_SEND_MESSAGES = int(Permission.SEND_MESSAGES)
_VOID_WITHOUT_SEND_MESSAGES = int(
    Permission.MENTION_EVERYONE | Permission.SEND_TTS_MESSAGES | Permission.ATTACH_FILES | Permission.EMBED_LINKS
)
_KEPT_WHILE_TIMED_OUT = int(Permission.VIEW_CHANNEL | Permission.READ_MESSAGE_HISTORY)
_DECIMAL = re.compile(r"[0-9]+")


def base_permissions(
    *, guild_id: int, owner_id: int, user_id: int, everyone_permissions: int, role_permissions: Iterable[int]
) -> int:
    """Guild-level permissions: the owner and ADMINISTRATOR holders get ALL, everyone else @everyone | roles.

    ``role_permissions`` are the permission bits of the member's roles other than @everyone.
    """
    if user_id == owner_id:
        return _ALL
    permissions = everyone_permissions
    for role in role_permissions:
        permissions |= role
    if permissions & _ADMINISTRATOR:
        return _ALL
    return permissions


def channel_permissions(
    base: int, *, guild_id: int, user_id: int, member_role_ids: Iterable[int], overwrites: Iterable[Overwrite]
) -> int:
    """Apply a text channel's overwrites to ``base`` (from ``base_permissions``), then the implicit rules.

    Order: @everyone overwrite, then the member's role overwrites combined (all denies, then all allows,
    so an allow on any role beats a deny on another), then the member's own overwrite. Overwrites for
    roles the member lacks and for other users are ignored.
    """
    if base & _ADMINISTRATOR:
        return _ALL
    role_ids = set(member_role_ids)
    # @everyone is handled on its own; listing it among the member's roles must not apply it twice.
    role_ids.discard(guild_id)
    everyone = member = None
    role_allow = role_deny = 0
    for overwrite in overwrites:
        if overwrite.target_id == guild_id:
            everyone = overwrite
        elif overwrite.type == OverwriteType.ROLE and overwrite.target_id in role_ids:
            role_allow |= overwrite.allow
            role_deny |= overwrite.deny
        elif overwrite.type == OverwriteType.MEMBER and overwrite.target_id == user_id:
            member = overwrite

    permissions = base
    if everyone is not None:
        permissions = (permissions & ~everyone.deny) | everyone.allow
    permissions = (permissions & ~role_deny) | role_allow
    if member is not None:
        permissions = (permissions & ~member.deny) | member.allow
    return _apply_implicit_permissions(permissions)


def _apply_implicit_permissions(permissions: int) -> int:
    # A channel the member cannot see grants nothing; sending extras are void without SEND_MESSAGES.
    if not permissions & _VIEW_CHANNEL:
        return 0
    if not permissions & _SEND_MESSAGES:
        permissions &= ~_VOID_WITHOUT_SEND_MESSAGES
    return permissions


_MANAGE_THREADS = int(Permission.MANAGE_THREADS)
_SEND_MESSAGES_IN_THREADS = int(Permission.SEND_MESSAGES_IN_THREADS)


def thread_permissions(parent: int, *, private: bool, is_member: bool) -> int:
    """A member's permissions in a thread, from theirs in its parent channel (``channel_permissions`` of the
    parent): a thread has no overwrites of its own; sending there is the parent's SEND_MESSAGES_IN_THREADS, not
    its SEND_MESSAGES; a private thread is seen only by its members and by MANAGE_THREADS holders."""
    if private and not is_member and not parent & _MANAGE_THREADS:
        return 0
    permissions = parent & ~_SEND_MESSAGES
    if parent & _SEND_MESSAGES_IN_THREADS:
        permissions |= _SEND_MESSAGES
    return permissions


def compute_permissions(
    *,
    guild_id: int,
    owner_id: int,
    user_id: int,
    everyone_permissions: int,
    member_roles: Mapping[int, int],
    overwrites: Iterable[Overwrite],
    timed_out: bool,
) -> int:
    """A member's effective permissions in a text channel.

    ``member_roles`` maps each of the member's role ids (without @everyone) to that role's permissions.
    ``timed_out`` is true while the member's ``communication_disabled_until`` is in the future; a timed-out
    member keeps only VIEW_CHANNEL and READ_MESSAGE_HISTORY unless they are the owner or an administrator.
    """
    base = base_permissions(
        guild_id=guild_id,
        owner_id=owner_id,
        user_id=user_id,
        everyone_permissions=everyone_permissions,
        role_permissions=member_roles.values(),
    )
    permissions = channel_permissions(
        base, guild_id=guild_id, user_id=user_id, member_role_ids=member_roles.keys(), overwrites=overwrites
    )
    if timed_out and not base & _ADMINISTRATOR:
        permissions &= _KEPT_WHILE_TIMED_OUT
    return permissions


def parse_permissions(value: object) -> int:
    """A permission bit set from the wire: a decimal string (Discord) or a non-negative int (discord.py).

    Raises ValueError for anything else, including bools, negative numbers and values above 2**64 - 1.
    """
    if isinstance(value, str):
        if not _DECIMAL.fullmatch(value):
            raise ValueError(f"permissions must be a decimal string, got {value!r}")
        return _in_range(int(value))
    # bool is an int subclass, but True as a permission set is a client bug, not the value 1.
    if isinstance(value, int) and not isinstance(value, bool):
        return _in_range(int(value))
    raise ValueError(f"permissions must be a decimal string or an integer, got {type(value).__name__}")


def serialize_permissions(value: int) -> str:
    """The wire form of a permission bit set: a decimal string, as Discord sends since API v8."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"permissions must be an integer, got {type(value).__name__}")
    return str(_in_range(int(value)))


def _in_range(value: int) -> int:
    if not 0 <= value <= MAX_PERMISSIONS:
        raise ValueError(f"permissions must be between 0 and 2**64 - 1, got {value}")
    return value
