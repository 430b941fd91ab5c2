"""Discord gateway v10 constants: opcodes, close codes, intents, and which intent each dispatch needs.

https://discord.com/developers/docs/topics/opcodes-and-status-codes and .../topics/gateway#gateway-intents.
"""
from __future__ import annotations

import enum
import zlib


class Op(enum.IntEnum):
    DISPATCH = 0
    HEARTBEAT = 1
    IDENTIFY = 2
    PRESENCE_UPDATE = 3
    VOICE_STATE_UPDATE = 4
    RESUME = 6
    RECONNECT = 7
    REQUEST_GUILD_MEMBERS = 8
    INVALID_SESSION = 9
    HELLO = 10
    HEARTBEAT_ACK = 11


class Close(enum.IntEnum):
    UNKNOWN_ERROR = 4000
    UNKNOWN_OPCODE = 4001
    DECODE_ERROR = 4002
    NOT_AUTHENTICATED = 4003
    AUTHENTICATION_FAILED = 4004
    ALREADY_AUTHENTICATED = 4005
    INVALID_SEQ = 4007
    RATE_LIMITED = 4008
    SESSION_TIMED_OUT = 4009
    INVALID_SHARD = 4010
    SHARDING_REQUIRED = 4011
    INVALID_API_VERSION = 4012
    INVALID_INTENTS = 4013
    DISALLOWED_INTENTS = 4014


class Intent(enum.IntFlag):
    GUILDS = 1 << 0
    GUILD_MEMBERS = 1 << 1
    GUILD_MODERATION = 1 << 2
    GUILD_EXPRESSIONS = 1 << 3
    GUILD_INTEGRATIONS = 1 << 4
    GUILD_WEBHOOKS = 1 << 5
    GUILD_INVITES = 1 << 6
    GUILD_VOICE_STATES = 1 << 7
    GUILD_PRESENCES = 1 << 8
    GUILD_MESSAGES = 1 << 9
    GUILD_MESSAGE_REACTIONS = 1 << 10
    GUILD_MESSAGE_TYPING = 1 << 11
    DIRECT_MESSAGES = 1 << 12
    DIRECT_MESSAGE_REACTIONS = 1 << 13
    DIRECT_MESSAGE_TYPING = 1 << 14
    MESSAGE_CONTENT = 1 << 15
    GUILD_SCHEDULED_EVENTS = 1 << 16
    AUTO_MODERATION_CONFIGURATION = 1 << 20
    AUTO_MODERATION_EXECUTION = 1 << 21
    GUILD_MESSAGE_POLLS = 1 << 24
    DIRECT_MESSAGE_POLLS = 1 << 25


#: Every bit Discord defines; IDENTIFY with any other closes 4013.
KNOWN_INTENTS = 0
for _intent in Intent:
    KNOWN_INTENTS |= int(_intent)
#: Refused with 4014 unless an admin allowed them for the user (``flask users intents``).
PRIVILEGED_INTENTS = int(Intent.GUILD_MEMBERS | Intent.GUILD_PRESENCES | Intent.MESSAGE_CONTENT)
#: The names ``flask users intents --allow/--deny`` accepts.
PRIVILEGED_BY_NAME = {"guild_members": Intent.GUILD_MEMBERS, "guild_presences": Intent.GUILD_PRESENCES,
                      "message_content": Intent.MESSAGE_CONTENT}

_MESSAGE_EVENTS = ("MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE", "MESSAGE_DELETE_BULK")
_REACTION_EVENTS = ("MESSAGE_REACTION_ADD", "MESSAGE_REACTION_REMOVE", "MESSAGE_REACTION_REMOVE_ALL",
                    "MESSAGE_REACTION_REMOVE_EMOJI")
#: Dispatch name -> (intent in a guild, intent in a DM). An event type not listed is never sent.
_INTENT_OF: dict[str, tuple[int, int]] = {
    **{name: (Intent.GUILD_MESSAGES, Intent.DIRECT_MESSAGES) for name in _MESSAGE_EVENTS},
    **{name: (Intent.GUILD_MESSAGE_REACTIONS, Intent.DIRECT_MESSAGE_REACTIONS) for name in _REACTION_EVENTS},
    "TYPING_START": (Intent.GUILD_MESSAGE_TYPING, Intent.DIRECT_MESSAGE_TYPING),
    "CHANNEL_PINS_UPDATE": (Intent.GUILDS, Intent.DIRECT_MESSAGES),
    **{name: (Intent.GUILDS, Intent.GUILDS) for name in (
        "CHANNEL_CREATE", "CHANNEL_UPDATE", "CHANNEL_DELETE", "GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE",
        "GUILD_ROLE_CREATE", "GUILD_ROLE_UPDATE", "GUILD_ROLE_DELETE")},
    "WEBHOOKS_UPDATE": (Intent.GUILD_WEBHOOKS, Intent.GUILD_WEBHOOKS),
    # THREAD_MEMBERS_UPDATE about others needs GUILD_MEMBERS too (app.gateway.connection checks it).
    **{name: (Intent.GUILDS, Intent.GUILDS) for name in (
        "THREAD_CREATE", "THREAD_UPDATE", "THREAD_DELETE", "THREAD_MEMBER_UPDATE", "THREAD_MEMBERS_UPDATE")},
    **{name: (Intent.GUILD_MEMBERS, Intent.GUILD_MEMBERS) for name in (
        "GUILD_MEMBER_ADD", "GUILD_MEMBER_UPDATE", "GUILD_MEMBER_REMOVE")},
    **{name: (Intent.GUILD_MODERATION, Intent.GUILD_MODERATION) for name in (
        "GUILD_BAN_ADD", "GUILD_BAN_REMOVE", "GUILD_AUDIT_LOG_ENTRY_CREATE")},
}

#: Events a session receives only when its user holds a permission in the guild (Discord sends audit log entries
#: to those who may view the audit log).
PERMISSION_OF: dict[str, int] = {"GUILD_AUDIT_LOG_ENTRY_CREATE": 1 << 7}


def required_intent(event_type: str, in_guild: bool) -> int | None:
    """The intent a session needs to receive ``event_type``, or None when the gateway never sends it."""
    pair = _INTENT_OF.get(event_type)
    if pair is None:
        return None
    return int(pair[0] if in_guild else pair[1])


#: Events whose ``d`` is a message: stripped of its content for sessions without MESSAGE_CONTENT.
CONTENT_EVENTS = frozenset({"MESSAGE_CREATE", "MESSAGE_UPDATE"})
#: Discord's maximum size of a payload a client sends; larger ones close with 4002.
MAX_PAYLOAD_BYTES = 4096
#: Discord's limit on what a client sends per connection (4008 beyond it).
SENDS_PER_MINUTE = 120
#: The suffix that ends every message of a zlib-stream (a Z_SYNC_FLUSH): clients decompress when they see it.
ZLIB_SUFFIX = b"\x00\x00\xff\xff"

#: The compressor of a zlib-stream connection. zlib's defaults (32 KiB window, memLevel 8) reserve 256 KiB per
#: connection (about 94 KiB of it touched once a payload went through); a 1 KiB window and memLevel 3 take
#: about 14 KiB, still find the repeated keys within a payload and, for payloads under 1 KiB, in the previous
#: one (measured on a 717-byte MESSAGE_CREATE: 346 bytes, then 16 for the next like it, the same as with the
#: defaults; a 512-byte window, the smallest, saves 4 KiB more but no longer sees the previous payload: 352).
#: A zlib.decompressobj() with its defaults, as clients use, decodes any smaller window.
ZLIB_WINDOW_BITS = 10
ZLIB_MEM_LEVEL = 3


def new_compressor():
    return zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, ZLIB_WINDOW_BITS, ZLIB_MEM_LEVEL)
