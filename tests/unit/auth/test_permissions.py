from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from app.auth.permissions import (
    Overwrite,
    OverwriteType,
    base_permissions,
    channel_permissions,
    compute_permissions,
    parse_permissions,
    serialize_permissions,
)
from app.auth.permissions import (
    Permission as P,
)

GUILD = 1000
OWNER = 2000
USER = 3000
OTHER_USER = 3001
ROLE_A = 4001
ROLE_B = 4002
ROLE_NOT_HELD = 4003

TEXT = P.VIEW_CHANNEL | P.SEND_MESSAGES | P.READ_MESSAGE_HISTORY | P.ADD_REACTIONS | P.EMBED_LINKS | P.ATTACH_FILES

# Discord's "Bitwise Permission Flags" table (developers/topics/permissions.mdx), name -> bit.
DOCUMENTED_BITS = {
    "CREATE_INSTANT_INVITE": 0, "KICK_MEMBERS": 1, "BAN_MEMBERS": 2, "ADMINISTRATOR": 3, "MANAGE_CHANNELS": 4,
    "MANAGE_GUILD": 5, "ADD_REACTIONS": 6, "VIEW_AUDIT_LOG": 7, "PRIORITY_SPEAKER": 8, "STREAM": 9,
    "VIEW_CHANNEL": 10, "SEND_MESSAGES": 11, "SEND_TTS_MESSAGES": 12, "MANAGE_MESSAGES": 13, "EMBED_LINKS": 14,
    "ATTACH_FILES": 15, "READ_MESSAGE_HISTORY": 16, "MENTION_EVERYONE": 17, "USE_EXTERNAL_EMOJIS": 18,
    "VIEW_GUILD_INSIGHTS": 19, "CONNECT": 20, "SPEAK": 21, "MUTE_MEMBERS": 22, "DEAFEN_MEMBERS": 23,
    "MOVE_MEMBERS": 24, "USE_VAD": 25, "CHANGE_NICKNAME": 26, "MANAGE_NICKNAMES": 27, "MANAGE_ROLES": 28,
    "MANAGE_WEBHOOKS": 29, "MANAGE_GUILD_EXPRESSIONS": 30, "USE_APPLICATION_COMMANDS": 31, "REQUEST_TO_SPEAK": 32,
    "MANAGE_EVENTS": 33, "MANAGE_THREADS": 34, "CREATE_PUBLIC_THREADS": 35, "CREATE_PRIVATE_THREADS": 36,
    "USE_EXTERNAL_STICKERS": 37, "SEND_MESSAGES_IN_THREADS": 38, "USE_EMBEDDED_ACTIVITIES": 39,
    "MODERATE_MEMBERS": 40, "VIEW_CREATOR_MONETIZATION_ANALYTICS": 41, "USE_SOUNDBOARD": 42,
    "CREATE_GUILD_EXPRESSIONS": 43, "CREATE_EVENTS": 44, "USE_EXTERNAL_SOUNDS": 45, "SEND_VOICE_MESSAGES": 46,
    "SET_VOICE_CHANNEL_STATUS": 48, "SEND_POLLS": 49, "USE_EXTERNAL_APPS": 50, "PIN_MESSAGES": 51,
    "BYPASS_SLOWMODE": 52,
}


def everyone_overwrite(*, allow: int = 0, deny: int = 0) -> Overwrite:
    return Overwrite(target_id=GUILD, type=OverwriteType.ROLE, allow=allow, deny=deny)


def role_overwrite(role_id: int, *, allow: int = 0, deny: int = 0) -> Overwrite:
    return Overwrite(target_id=role_id, type=OverwriteType.ROLE, allow=allow, deny=deny)


def member_overwrite(user_id: int, *, allow: int = 0, deny: int = 0) -> Overwrite:
    return Overwrite(target_id=user_id, type=OverwriteType.MEMBER, allow=allow, deny=deny)


# --- the bit table ------------------------------------------------------------------------------------------


def test_every_documented_bit_is_defined_and_nothing_else():
    assert {member.name: member.value.bit_length() - 1 for member in P} == DOCUMENTED_BITS


def test_all_is_the_union_of_every_defined_bit_and_leaves_retired_bit_47_clear():
    union = 0
    for member in P:
        union |= member
    assert P.ALL == union
    assert not P.ALL & (1 << 47)


def test_all_matches_discord_py():
    discord = pytest.importorskip("discord")
    assert P.ALL == discord.Permissions.all().value


def test_default_everyone_is_the_published_client_default():
    assert P.DEFAULT_EVERYONE == 0x637DE41
    expected_members = {
        "CREATE_INSTANT_INVITE", "ADD_REACTIONS", "STREAM", "VIEW_CHANNEL", "SEND_MESSAGES", "SEND_TTS_MESSAGES",
        "EMBED_LINKS", "ATTACH_FILES", "READ_MESSAGE_HISTORY", "MENTION_EVERYONE", "USE_EXTERNAL_EMOJIS",
        "CONNECT", "SPEAK", "USE_VAD", "CHANGE_NICKNAME",
    }
    assert {member.name for member in P if member & P.DEFAULT_EVERYONE} == expected_members


def test_overwrite_is_immutable():
    overwrite = role_overwrite(ROLE_A, allow=P.VIEW_CHANNEL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        overwrite.allow = 0


# --- base permissions ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_id", "everyone", "roles", "expected"),
    [
        pytest.param(OWNER, 0, [], P.ALL, id="owner-without-roles-gets-all"),
        pytest.param(USER, TEXT, [P.ADMINISTRATOR], P.ALL, id="administrator-via-role-gets-all"),
        pytest.param(USER, P.ADMINISTRATOR, [], P.ALL, id="administrator-on-everyone-gets-all"),
        pytest.param(USER, TEXT, [], TEXT, id="everyone-only"),
        pytest.param(USER, 0, [], 0, id="nothing-granted"),
        pytest.param(
            USER, P.VIEW_CHANNEL, [P.SEND_MESSAGES, P.MANAGE_MESSAGES | P.SEND_MESSAGES],
            P.VIEW_CHANNEL | P.SEND_MESSAGES | P.MANAGE_MESSAGES, id="roles-are-or-ed-onto-everyone",
        ),
    ],
)
def test_base_permissions(user_id, everyone, roles, expected):
    actual = base_permissions(
        guild_id=GUILD, owner_id=OWNER, user_id=user_id, everyone_permissions=everyone, role_permissions=roles
    )
    assert actual == expected


# --- channel permissions ------------------------------------------------------------------------------------

# (everyone role permissions, member's roles {id: permissions}, overwrites, timed_out, expected, user)
CHANNEL_CASES = [
    pytest.param(TEXT, {}, [], False, TEXT, USER, id="no-overwrites-keeps-base"),
    pytest.param(
        TEXT, {}, [everyone_overwrite(deny=P.ADD_REACTIONS)], False, TEXT & ~P.ADD_REACTIONS, USER,
        id="everyone-overwrite-deny",
    ),
    pytest.param(
        TEXT, {}, [everyone_overwrite(allow=P.MANAGE_MESSAGES)], False, TEXT | P.MANAGE_MESSAGES, USER,
        id="everyone-overwrite-allow",
    ),
    pytest.param(
        TEXT, {}, [everyone_overwrite(allow=P.ADD_REACTIONS, deny=P.ADD_REACTIONS)], False, TEXT, USER,
        id="everyone-overwrite-allow-applies-after-its-deny",
    ),
    pytest.param(
        TEXT, {ROLE_A: 0}, [everyone_overwrite(deny=P.ADD_REACTIONS), role_overwrite(ROLE_A, allow=P.ADD_REACTIONS)],
        False, TEXT, USER, id="role-overwrite-allow-beats-everyone-overwrite-deny",
    ),
    pytest.param(
        TEXT, {ROLE_A: 0},
        [everyone_overwrite(allow=P.MANAGE_MESSAGES), role_overwrite(ROLE_A, deny=P.MANAGE_MESSAGES)],
        False, TEXT, USER, id="role-overwrite-deny-beats-everyone-overwrite-allow",
    ),
    pytest.param(
        TEXT, {ROLE_A: 0, ROLE_B: 0},
        [role_overwrite(ROLE_A, deny=P.ADD_REACTIONS), role_overwrite(ROLE_B, allow=P.ADD_REACTIONS)],
        False, TEXT, USER, id="role-overwrites-combined-allow-wins-over-other-roles-deny",
    ),
    pytest.param(
        TEXT, {ROLE_A: 0, ROLE_B: 0},
        [role_overwrite(ROLE_B, allow=P.ADD_REACTIONS), role_overwrite(ROLE_A, deny=P.ADD_REACTIONS)],
        False, TEXT, USER, id="role-overwrites-combined-regardless-of-order",
    ),
    pytest.param(
        TEXT, {ROLE_A: 0, ROLE_B: 0},
        [role_overwrite(ROLE_A, deny=P.ADD_REACTIONS), role_overwrite(ROLE_B, deny=P.EMBED_LINKS)],
        False, TEXT & ~P.ADD_REACTIONS & ~P.EMBED_LINKS, USER, id="role-overwrite-denies-accumulate",
    ),
    pytest.param(
        TEXT, {ROLE_A: 0},
        [role_overwrite(ROLE_A, allow=P.MANAGE_MESSAGES), member_overwrite(USER, deny=P.MANAGE_MESSAGES)],
        False, TEXT, USER, id="member-overwrite-deny-beats-role-overwrite-allow",
    ),
    pytest.param(
        TEXT, {ROLE_A: 0},
        [role_overwrite(ROLE_A, deny=P.ATTACH_FILES), member_overwrite(USER, allow=P.ATTACH_FILES)],
        False, TEXT, USER, id="member-overwrite-allow-beats-role-overwrite-deny",
    ),
    pytest.param(
        TEXT, {ROLE_A: 0}, [role_overwrite(ROLE_NOT_HELD, deny=P.SEND_MESSAGES)], False, TEXT, USER,
        id="overwrite-for-role-not-held-is-ignored",
    ),
    pytest.param(
        TEXT, {}, [member_overwrite(OTHER_USER, deny=P.VIEW_CHANNEL)], False, TEXT, USER,
        id="overwrite-for-another-member-is-ignored",
    ),
    pytest.param(
        TEXT, {}, [everyone_overwrite(deny=P.VIEW_CHANNEL), member_overwrite(USER, allow=P.VIEW_CHANNEL)],
        False, TEXT, USER, id="member-overwrite-opens-private-channel",
    ),
    pytest.param(
        TEXT | P.MANAGE_GUILD | P.MANAGE_MESSAGES, {}, [everyone_overwrite(deny=P.VIEW_CHANNEL)], False, 0, USER,
        id="implicit-no-view-channel-voids-everything",
    ),
    pytest.param(
        TEXT | P.MENTION_EVERYONE | P.SEND_TTS_MESSAGES, {}, [everyone_overwrite(deny=P.SEND_MESSAGES)], False,
        P.VIEW_CHANNEL | P.READ_MESSAGE_HISTORY | P.ADD_REACTIONS, USER,
        id="implicit-no-send-messages-voids-mention-tts-attach-embed",
    ),
    pytest.param(
        TEXT, {ROLE_A: P.ADMINISTRATOR},
        [everyone_overwrite(deny=P.VIEW_CHANNEL), member_overwrite(USER, deny=P.ALL)], False, P.ALL, USER,
        id="administrator-ignores-overwrites",
    ),
    pytest.param(
        TEXT, {}, [member_overwrite(OWNER, deny=P.ALL)], False, P.ALL, OWNER, id="owner-ignores-overwrites",
    ),
    pytest.param(
        TEXT | P.MANAGE_MESSAGES | P.PIN_MESSAGES, {}, [], True, P.VIEW_CHANNEL | P.READ_MESSAGE_HISTORY, USER,
        id="timed-out-keeps-only-view-and-history",
    ),
    pytest.param(
        TEXT, {}, [everyone_overwrite(deny=P.READ_MESSAGE_HISTORY)], True, P.VIEW_CHANNEL, USER,
        id="timed-out-does-not-grant-history-the-channel-denies",
    ),
    pytest.param(
        TEXT, {}, [everyone_overwrite(deny=P.VIEW_CHANNEL)], True, 0, USER, id="timed-out-in-hidden-channel",
    ),
    pytest.param(TEXT, {}, [], True, P.ALL, OWNER, id="timed-out-owner-is-exempt"),
    pytest.param(TEXT, {ROLE_A: P.ADMINISTRATOR}, [], True, P.ALL, USER, id="timed-out-administrator-is-exempt"),
]


@pytest.mark.parametrize(("everyone", "member_roles", "overwrites", "timed_out", "expected", "user_id"), CHANNEL_CASES)
def test_compute_permissions(everyone, member_roles, overwrites, timed_out, expected, user_id):
    actual = compute_permissions(
        guild_id=GUILD,
        owner_id=OWNER,
        user_id=user_id,
        everyone_permissions=everyone,
        member_roles=member_roles,
        overwrites=overwrites,
        timed_out=timed_out,
    )
    assert P(actual) == expected


def test_channel_permissions_administrator_base_ignores_overwrites():
    actual = channel_permissions(
        P.ADMINISTRATOR, guild_id=GUILD, user_id=USER, member_role_ids=[], overwrites=[everyone_overwrite(deny=P.ALL)]
    )
    assert actual == P.ALL


def test_everyone_listed_among_member_roles_is_not_applied_twice():
    # Applied again as a role overwrite, the @everyone allow would cancel the role's deny.
    overwrites = [everyone_overwrite(allow=P.MANAGE_MESSAGES), role_overwrite(ROLE_A, deny=P.MANAGE_MESSAGES)]
    actual = channel_permissions(
        TEXT, guild_id=GUILD, user_id=USER, member_role_ids=[GUILD, ROLE_A], overwrites=overwrites
    )
    assert actual == TEXT


def test_member_typed_overwrite_is_not_applied_as_a_role_overwrite():
    overwrites = [member_overwrite(ROLE_A, deny=P.SEND_MESSAGES)]
    actual = channel_permissions(TEXT, guild_id=GUILD, user_id=USER, member_role_ids=[ROLE_A], overwrites=overwrites)
    assert actual == TEXT


def _discord_py_permissions(discord, *, everyone, member_roles, overwrites, timed_out, user_id) -> int:
    """discord.py's GuildChannel.permissions_for plus its text-channel implicit rules, over stand-in objects."""
    from discord.abc import GuildChannel, _Overwrites

    roles = {role_id: SimpleNamespace(_permissions=int(bits)) for role_id, bits in member_roles.items()}
    guild = SimpleNamespace(
        id=GUILD,
        owner_id=OWNER,
        default_role=SimpleNamespace(permissions=discord.Permissions(int(everyone))),
        get_role=roles.get,
    )
    # discord.py keeps the @everyone overwrite first, as it does when it loads a channel.
    ordered = sorted(overwrites, key=lambda overwrite: overwrite.target_id != GUILD)
    channel = SimpleNamespace(
        guild=guild,
        _state=SimpleNamespace(self_id=None),
        _overwrites=[
            _Overwrites({"id": o.target_id, "type": int(o.type), "allow": int(o.allow), "deny": int(o.deny)})
            for o in ordered
        ],
    )
    member = SimpleNamespace(
        id=user_id, _roles=discord.utils.SnowflakeList(member_roles), is_timed_out=lambda: timed_out
    )
    permissions = GuildChannel.permissions_for(channel, member)
    GuildChannel._apply_implicit_permissions(channel, permissions)
    return permissions.value


# discord.py deliberately differs without VIEW_CHANNEL: it voids only channel bits and keeps guild-wide ones.
VISIBLE_CHANNEL_CASES = [case for case in CHANNEL_CASES if case.values[4] & P.VIEW_CHANNEL]


@pytest.mark.parametrize(
    ("everyone", "member_roles", "overwrites", "timed_out", "expected", "user_id"), VISIBLE_CHANNEL_CASES
)
def test_compute_permissions_agrees_with_discord_py(everyone, member_roles, overwrites, timed_out, expected, user_id):
    discord = pytest.importorskip("discord")
    ours = compute_permissions(
        guild_id=GUILD,
        owner_id=OWNER,
        user_id=user_id,
        everyone_permissions=everyone,
        member_roles=member_roles,
        overwrites=overwrites,
        timed_out=timed_out,
    )
    theirs = _discord_py_permissions(
        discord, everyone=everyone, member_roles=member_roles, overwrites=overwrites, timed_out=timed_out,
        user_id=user_id,
    )
    assert P(ours) == P(theirs)


# --- wire format --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("0", 0, id="zero-string"),
        pytest.param("2112", 2112, id="decimal-string"),
        pytest.param("2251799813685248", P.PIN_MESSAGES, id="string-above-32-bits"),
        pytest.param("18446744073709551615", 2**64 - 1, id="string-max"),
        pytest.param("007", 7, id="leading-zeros"),
        pytest.param(0, 0, id="zero-int"),
        pytest.param(2112, 2112, id="int-as-discord-py-sends"),
        pytest.param(2**64 - 1, 2**64 - 1, id="int-max"),
        pytest.param(P.ADMINISTRATOR, 8, id="permission-member"),
    ],
)
def test_parse_permissions_accepts(raw, expected):
    parsed = parse_permissions(raw)
    assert parsed == expected
    assert type(parsed) is int


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("-1", id="negative-string"),
        pytest.param("", id="empty-string"),
        pytest.param(" 8", id="leading-space"),
        pytest.param("8\n", id="trailing-newline"),
        pytest.param("+8", id="plus-sign"),
        pytest.param("0x10", id="hex-string"),
        pytest.param("1_000", id="underscore-separator"),
        pytest.param("8.0", id="decimal-point"),
        pytest.param("1e3", id="exponent"),
        pytest.param("\u0668", id="non-ascii-digit"),
        pytest.param("18446744073709551616", id="string-above-64-bits"),
        pytest.param(-1, id="negative-int"),
        pytest.param(2**64, id="int-above-64-bits"),
        pytest.param(True, id="bool-true"),
        pytest.param(False, id="bool-false"),
        pytest.param(None, id="none"),
        pytest.param(8.0, id="float"),
        pytest.param(b"8", id="bytes"),
    ],
)
def test_parse_permissions_rejects(raw):
    with pytest.raises(ValueError):
        parse_permissions(raw)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(0, "0", id="zero"),
        pytest.param(P.PIN_MESSAGES, "2251799813685248", id="permission-member-as-plain-decimal"),
        pytest.param(P.ALL, "8866461766385663", id="all"),
        pytest.param(2**64 - 1, "18446744073709551615", id="max"),
    ],
)
def test_serialize_permissions(value, expected):
    assert serialize_permissions(value) == expected
    assert parse_permissions(serialize_permissions(value)) == value


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(-1, id="negative"),
        pytest.param(2**64, id="above-64-bits"),
        pytest.param(True, id="bool"),
        pytest.param("8", id="string"),
    ],
)
def test_serialize_permissions_rejects(value):
    with pytest.raises(ValueError):
        serialize_permissions(value)
