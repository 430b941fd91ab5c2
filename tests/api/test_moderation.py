"""Moderation: PATCH members (nick, roles, timeout, mute/deaf), kicks, bans and their purge, bulk bans, member
search; each with its permission and Discord's role hierarchy."""
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest

from app.auth.permissions import Permission
from app.ids import snowflake_from_ms
from app.messages.base import Message
from tests.support.factories import Actor
from tests.support.responses import error, field_error_codes, json_body, no_content

EVERYONE = (Permission.VIEW_CHANNEL | Permission.SEND_MESSAGES | Permission.READ_MESSAGE_HISTORY
            | Permission.ADD_REACTIONS | Permission.CHANGE_NICKNAME)
MODERATOR = (Permission.KICK_MEMBERS | Permission.BAN_MEMBERS | Permission.MODERATE_MEMBERS
             | Permission.MANAGE_NICKNAMES | Permission.MANAGE_ROLES | Permission.MUTE_MEMBERS
             | Permission.DEAFEN_MEMBERS | Permission.MANAGE_GUILD)


@dataclass
class Guild:
    """owner; mod (role at position 3 with MODERATOR); peer (same role as mod); junior (role at 1); plain (no role);
    admin (ADMINISTRATOR at position 2); an outsider."""

    owner: Actor
    mod: Actor
    peer: Actor
    junior: Actor
    plain: Actor
    admin: Actor
    outsider: Actor
    guild_id: int
    channel_id: int
    mod_role: int
    junior_role: int


@pytest.fixture
def guild(make):
    owner, mod, peer, junior, plain, admin, outsider = (make.actor(name) for name in (
        None, "mod", None, "junior", "plainuser", None, None))
    guild_id, channel_id = make.guild(owner, everyone=EVERYONE)
    mod_role = make.role(guild_id, MODERATOR, position=3, name="mods")
    junior_role = make.role(guild_id, position=1, name="juniors")
    make.member(guild_id, mod, roles=[mod_role])
    make.member(guild_id, peer, roles=[mod_role])
    make.member(guild_id, junior, roles=[junior_role])
    make.member(guild_id, plain)
    make.member(guild_id, admin, roles=[make.role(guild_id, Permission.ADMINISTRATOR, position=2, name="admins")])
    return Guild(owner, mod, peer, junior, plain, admin, outsider, guild_id, channel_id, mod_role, junior_role)


def member_url(g, user_id):
    return f"/api/v10/guilds/{g.guild_id}/members/{user_id}"


def patch(client, g, actor, user_id, **body):
    return client.patch(member_url(g, user_id), json=body, headers=actor.headers)


def ban_url(g, user_id):
    return f"/api/v10/guilds/{g.guild_id}/bans/{user_id}"


def send(client, actor, channel_id, content="hello"):
    return client.post(f"/api/v10/channels/{channel_id}/messages", json={"content": content}, headers=actor.headers)


def in_future(**delta) -> str:
    return (datetime.now(timezone.utc) + timedelta(**delta)).isoformat()


# -- nick -------------------------------------------------------------------------------------------------------

def test_members_change_their_own_nick_with_change_nickname_and_others_with_manage_nicknames(client, guild):
    g = guild
    body = json_body(patch(client, g, g.plain, g.plain.id, nick="me"), 200)
    assert body["nick"] == "me" and body["user"]["id"] == str(g.plain.id)
    body = json_body(client.patch(f"/api/v10/guilds/{g.guild_id}/members/@me", json={"nick": "again"},
                                  headers=g.plain.headers), 200)
    assert body["nick"] == "again"
    error(patch(client, g, g.plain, g.junior.id, nick="x"), 403, 50013)
    error(patch(client, g, g.outsider, g.junior.id, nick="x"), 403, 50001)
    assert json_body(patch(client, g, g.mod, g.junior.id, nick="renamed"), 200)["nick"] == "renamed"
    assert json_body(patch(client, g, g.mod, g.junior.id, nick=None), 200)["nick"] is None
    assert field_error_codes(patch(client, g, g.mod, g.junior.id, nick="x" * 33), "nick") == ["BASE_TYPE_MAX_LENGTH"]


def test_own_nick_without_change_nickname_is_refused(client, make):
    owner, bob = make.actor(), make.actor()
    guild_id, _ = make.guild(owner, everyone=Permission.VIEW_CHANNEL)
    make.member(guild_id, bob)
    error(client.patch(f"/api/v10/guilds/{guild_id}/members/@me", json={"nick": "x"}, headers=bob.headers),
          403, 50013)


def test_the_hierarchy_protects_peers_seniors_and_the_owner(client, guild):
    g = guild
    for target in (g.peer, g.owner):
        error(patch(client, g, g.mod, target.id, nick="x"), 403, 50013)
        error(client.delete(member_url(g, target.id), headers=g.mod.headers), 403, 50013)
        error(client.put(ban_url(g, target.id), json={}, headers=g.mod.headers), 403, 50013)
        error(patch(client, g, g.mod, target.id, communication_disabled_until=in_future(hours=1)), 403, 50013)
    # The owner acts on anyone but is acted on by no one.
    assert json_body(patch(client, g, g.owner, g.peer.id, nick="p"), 200)["nick"] == "p"
    error(patch(client, g, g.admin, g.owner.id, nick="x"), 403, 50013)


# -- roles ------------------------------------------------------------------------------------------------------

def test_roles_are_set_with_manage_roles_only_below_the_actors_highest(client, guild, make, published):
    g = guild
    low = make.role(g.guild_id, position=2, name="low")
    body = json_body(patch(client, g, g.mod, g.junior.id, roles=[str(low), str(g.junior_role)]), 200)
    assert sorted(body["roles"]) == sorted([str(low), str(g.junior_role)])
    assert [t for t, _ in published.dispatches() if t == "GUILD_MEMBER_UPDATE"] == ["GUILD_MEMBER_UPDATE"]
    # The mods role is at the actor's own position: neither given nor taken by them.
    error(patch(client, g, g.mod, g.junior.id, roles=[str(g.mod_role)]), 403, 50013)
    error(patch(client, g, g.plain, g.junior.id, roles=[]), 403, 50013)
    assert json_body(patch(client, g, g.mod, g.junior.id, roles=[]), 200)["roles"] == []
    assert json_body(client.get(member_url(g, g.junior.id), headers=g.mod.headers), 200)["roles"] == []
    codes = field_error_codes(patch(client, g, g.owner, g.junior.id, roles=["12345"]), "roles", "0")
    assert codes == ["UNKNOWN_ROLE"]


# -- timeouts ---------------------------------------------------------------------------------------------------

def test_a_timed_out_member_reads_but_cannot_send_or_react_until_the_timeout_is_lifted(client, guild, published):
    g = guild
    message = json_body(send(client, g.owner, g.channel_id), 200)
    until = in_future(hours=1)
    body = json_body(patch(client, g, g.mod, g.junior.id, communication_disabled_until=until), 200)
    assert datetime.fromisoformat(body["communication_disabled_until"]) == datetime.fromisoformat(until)
    assert ("GUILD_MEMBER_UPDATE" in [t for t, _ in published.dispatches()])
    error(send(client, g.junior, g.channel_id), 403, 50013)
    error(client.put(f"/api/v10/channels/{g.channel_id}/messages/{message['id']}/reactions/%F0%9F%91%8D/@me",
                     headers=g.junior.headers), 403, 50013)
    history = json_body(client.get(f"/api/v10/channels/{g.channel_id}/messages", headers=g.junior.headers), 200)
    assert [m["id"] for m in history] == [message["id"]]
    assert json_body(patch(client, g, g.mod, g.junior.id, communication_disabled_until=None), 200)[
        "communication_disabled_until"] is None
    json_body(send(client, g.junior, g.channel_id), 200)


def test_a_past_timeout_restricts_nothing(client, guild):
    g = guild
    json_body(patch(client, g, g.mod, g.junior.id, communication_disabled_until=in_future(seconds=-5)), 200)
    json_body(send(client, g.junior, g.channel_id), 200)


def test_timeouts_need_moderate_members_and_spare_admins_and_last_at_most_28_days(client, guild):
    g = guild
    error(patch(client, g, g.plain, g.junior.id, communication_disabled_until=in_future(hours=1)), 403, 50013)
    error(patch(client, g, g.owner, g.admin.id, communication_disabled_until=in_future(hours=1)), 403, 50013)
    assert field_error_codes(patch(client, g, g.mod, g.junior.id, communication_disabled_until=in_future(days=29)),
                             "communication_disabled_until") == ["COMMUNICATION_DISABLED_TOO_LONG"]
    # The last moment a timestamp can name, west of UTC: past year 9999 once in UTC.
    for unparsable in ("tomorrow", "9999-12-31T23:59:59-05:00"):
        assert field_error_codes(patch(client, g, g.mod, g.junior.id, communication_disabled_until=unparsable),
                                 "communication_disabled_until") == ["DATE_TYPE_PARSE"]
    error(patch(client, g, g.mod, g.mod.id, communication_disabled_until=in_future(hours=1)), 403, 50013)
    json_body(patch(client, g, g.mod, g.junior.id, communication_disabled_until=in_future(days=27)), 200)


# -- mute and deaf ----------------------------------------------------------------------------------------------

def test_mute_and_deaf_are_stored_and_served_with_their_permissions(client, guild, make):
    g = guild
    body = json_body(patch(client, g, g.mod, g.junior.id, mute=True, deaf=True), 200)
    assert (body["mute"], body["deaf"]) == (True, True)
    fetched = json_body(client.get(member_url(g, g.junior.id), headers=g.plain.headers), 200)
    assert (fetched["mute"], fetched["deaf"]) == (True, True)
    muter = make.actor()
    make.member(g.guild_id, muter, roles=[make.role(g.guild_id, Permission.MUTE_MEMBERS, position=2)])
    assert json_body(patch(client, g, muter, g.junior.id, mute=False), 200)["mute"] is False
    error(patch(client, g, muter, g.junior.id, deaf=False), 403, 50013)
    assert field_error_codes(patch(client, g, g.mod, g.junior.id, channel_id="1"), "channel_id") == [
        "UNSUPPORTED_FIELD"]


def test_editing_an_unknown_member_or_guild(client, guild):
    g = guild
    error(patch(client, g, g.mod, g.outsider.id, nick="x"), 404, 10007)
    error(client.patch(f"/api/v10/guilds/1/members/{g.junior.id}", json={"nick": "x"}, headers=g.mod.headers),
          404, 10004)


# -- kicks ------------------------------------------------------------------------------------------------------

def test_kick_needs_kick_members_and_announces_the_removal(client, guild, published):
    g = guild
    error(client.delete(member_url(g, g.junior.id), headers=g.plain.headers), 403, 50013)
    error(client.delete(member_url(g, g.junior.id), headers=g.outsider.headers), 403, 50001)
    no_content(client.delete(member_url(g, g.junior.id), headers=g.mod.headers))
    assert [d["user"]["id"] for t, d in published.dispatches() if t == "GUILD_MEMBER_REMOVE"] == [str(g.junior.id)]
    error(client.get(member_url(g, g.junior.id), headers=g.mod.headers), 404, 10007)
    error(client.delete(member_url(g, g.junior.id), headers=g.mod.headers), 404, 10007)


# -- bans -------------------------------------------------------------------------------------------------------

def test_a_ban_removes_the_member_lists_the_ban_and_refuses_rejoining_until_unbanned(client, guild, make, published):
    g = guild
    no_content(client.put(ban_url(g, g.junior.id), json={"delete_message_seconds": 0},
                          headers={**g.mod.headers, "X-Audit-Log-Reason": "spam%20links"}))
    types = [t for t, _ in published.dispatches()]
    assert "GUILD_BAN_ADD" in types and "GUILD_MEMBER_REMOVE" in types
    error(client.get(member_url(g, g.junior.id), headers=g.mod.headers), 404, 10007)
    ban = json_body(client.get(ban_url(g, g.junior.id), headers=g.mod.headers), 200)
    assert ban["user"]["id"] == str(g.junior.id) and ban["reason"] == "spam links"
    # Banning again is no error and changes nothing.
    no_content(client.put(ban_url(g, g.junior.id), json={}, headers=g.mod.headers))
    error(client.put(member_url(g, g.junior.id), json={"access_token": make.grant(g.junior, g.owner)},
                     headers=g.owner.headers), 403, 40007)
    published.clear()
    no_content(client.delete(ban_url(g, g.junior.id), headers=g.mod.headers))
    assert [t for t, _ in published.dispatches()][0] == "GUILD_BAN_REMOVE"
    error(client.get(ban_url(g, g.junior.id), headers=g.mod.headers), 404, 10026)
    error(client.delete(ban_url(g, g.junior.id), headers=g.mod.headers), 404, 10026)
    json_body(client.put(member_url(g, g.junior.id), json={"access_token": make.grant(g.junior, g.owner)},
                         headers=g.owner.headers), 201)


def test_ban_routes_need_ban_members(client, guild):
    g = guild
    for response in (client.put(ban_url(g, g.junior.id), json={}, headers=g.plain.headers),
                     client.get(ban_url(g, g.junior.id), headers=g.plain.headers),
                     client.delete(ban_url(g, g.junior.id), headers=g.plain.headers),
                     client.get(f"/api/v10/guilds/{g.guild_id}/bans", headers=g.plain.headers),
                     client.post(f"/api/v10/guilds/{g.guild_id}/bulk-ban", json={"user_ids": [str(g.junior.id)]},
                                 headers=g.plain.headers)):
        error(response, 403, 50013)
    error(client.put(ban_url(g, g.junior.id), json={}, headers=g.outsider.headers), 403, 50001)
    error(client.get(f"/api/v10/guilds/{g.guild_id}/bans", headers=g.outsider.headers), 403, 50001)
    error(client.put(ban_url(g, 12345), json={}, headers=g.mod.headers), 404, 10013)


def test_a_non_member_can_be_banned_and_bans_page_by_user_id(client, guild):
    g = guild
    targets = sorted([g.outsider.id, g.junior.id, g.plain.id])
    for user_id in targets:
        no_content(client.put(ban_url(g, user_id), json={}, headers=g.mod.headers))
    url = f"/api/v10/guilds/{g.guild_id}/bans"
    ids = lambda response: [b["user"]["id"] for b in json_body(response, 200)]  # noqa: E731
    assert ids(client.get(url, headers=g.mod.headers)) == [str(u) for u in targets]
    assert ids(client.get(url, query_string={"after": targets[0]}, headers=g.mod.headers)) == [
        str(u) for u in targets[1:]]
    assert ids(client.get(url, query_string={"before": targets[2], "limit": 1}, headers=g.mod.headers)) == [
        str(targets[1])]
    assert ids(client.get(url, query_string={"limit": 2}, headers=g.mod.headers)) == [str(u) for u in targets[:2]]
    assert field_error_codes(client.get(url, query_string={"limit": 1001}, headers=g.mod.headers), "limit") == [
        "NUMBER_TYPE_MAX"]


def test_delete_message_seconds_is_bounded(client, guild):
    g = guild
    for value in (-1, 604801):
        codes = field_error_codes(client.put(ban_url(g, g.junior.id), json={"delete_message_seconds": value},
                                             headers=g.mod.headers), "delete_message_seconds")
        assert codes in (["NUMBER_TYPE_MIN"], ["NUMBER_TYPE_MAX"])
    json_body(client.get(member_url(g, g.junior.id), headers=g.mod.headers), 200)
    # discord.py sends the window in the query string: it is read there too, and bounded alike.
    assert field_error_codes(client.put(ban_url(g, g.junior.id), query_string={"delete_message_seconds": 604801},
                                        json={}, headers=g.mod.headers), "delete_message_seconds") == [
        "NUMBER_TYPE_MAX"]


def test_the_purge_window_may_come_in_the_query_string(client, guild):
    g = guild
    json_body(send(client, g.junior, g.channel_id), 200)
    no_content(client.put(ban_url(g, g.junior.id), query_string={"delete_message_seconds": 60}, json={},
                          headers=g.mod.headers))
    assert json_body(client.get(f"/api/v10/channels/{g.channel_id}/messages", headers=g.owner.headers), 200) == []


def _message_locations(store, channel_ids):
    """Every message of the channels by a full scan of their history: {(channel_id, message_id): author_id}."""
    found = {}
    for channel_id in channel_ids:
        before = None
        while True:
            page = store.list_messages(channel_id, before=before, limit=100)
            found.update({(m.channel_id, m.id): m.author_id for m in page})
            if len(page) < 100:
                break
            before = page[-1].id
    return found


def test_a_ban_purges_the_users_messages_of_the_window_in_every_channel_and_nothing_else(
        client, guild, make, resources, published):
    g = guild
    other_channel = make.channel(g.guild_id, "other")
    store = resources.message_store
    for channel_id in (g.channel_id, other_channel):
        for _ in range(3):
            json_body(send(client, g.junior, channel_id), 200)
            json_body(send(client, g.plain, channel_id), 200)
    # Two days old: outside a one-day window.
    old = snowflake_from_ms(int((datetime.now(timezone.utc) - timedelta(days=2)).timestamp() * 1000))
    store.create_message(Message(id=old, channel_id=other_channel, author_id=g.junior.id, content="old",
                                 guild_id=g.guild_id))
    before = _message_locations(store, [g.channel_id, other_channel])
    cutoff = datetime.now(timezone.utc) - timedelta(days=1)
    expected_gone = {key for key, author in before.items()
                     if author == g.junior.id and key[1] > snowflake_from_ms(int(cutoff.timestamp() * 1000))}
    assert len(expected_gone) == 6
    published.clear()

    no_content(client.put(ban_url(g, g.junior.id), json={"delete_message_seconds": 86400}, headers=g.mod.headers))

    after = _message_locations(store, [g.channel_id, other_channel])
    assert set(before) - set(after) == expected_gone
    assert (other_channel, old) in after
    deleted = {(int(d["channel_id"]), int(i)) for t, d in published.dispatches() if t == "MESSAGE_DELETE_BULK"
               for i in d["ids"]}
    assert deleted == expected_gone
    # The channels' history as served no longer shows them either.
    served = json_body(client.get(f"/api/v10/channels/{g.channel_id}/messages", headers=g.owner.headers), 200)
    assert {m["author"]["id"] for m in served} == {str(g.plain.id)}


def test_the_purge_reads_the_author_index_not_the_channels_history(client, guild, make, resources, monkeypatch):
    g = guild
    channels = [g.channel_id] + [make.channel(g.guild_id, f"c{i}") for i in range(3)]
    for channel_id in channels:
        json_body(send(client, g.junior, channel_id), 200)
        for _ in range(3):
            json_body(send(client, g.plain, channel_id), 200)
    store = resources.message_store
    calls: dict[str, int] = {}

    def counted(name):
        method = getattr(store, name)

        def call(*args, **kwargs):
            calls[name] = calls.get(name, 0) + 1
            return method(*args, **kwargs)
        return call
    for name in ("messages_by_author", "list_messages", "channel_buckets", "messages_in_bucket", "count_messages"):
        monkeypatch.setattr(store, name, counted(name))
    no_content(client.put(ban_url(g, g.junior.id), json={"delete_message_seconds": 600}, headers=g.mod.headers))
    assert calls.get("messages_by_author") == 1
    # No walk of any channel's history; list_messages(limit=1) only where a deleted message was the channel's
    # last, to find its new last_message_id.
    assert calls.get("channel_buckets", 0) == calls.get("messages_in_bucket", 0) == calls.get("count_messages", 0) == 0
    assert calls.get("list_messages", 0) <= len(channels)


def test_bulk_ban_reports_banned_and_failed_users(client, guild, published):
    g = guild
    url = f"/api/v10/guilds/{g.guild_id}/bulk-ban"
    json_body(send(client, g.plain, g.channel_id), 200)
    body = json_body(client.post(url, json={"user_ids": [str(g.plain.id), str(g.junior.id), str(g.peer.id),
                                                         str(g.owner.id), "12345"],
                                            "delete_message_seconds": 3600}, headers=g.mod.headers), 200)
    assert sorted(body["banned_users"]) == sorted([str(g.plain.id), str(g.junior.id)])
    assert sorted(body["failed_users"]) == sorted([str(g.peer.id), str(g.owner.id), "12345"])
    assert [t for t, _ in published.dispatches()].count("GUILD_BAN_ADD") == 2
    assert json_body(client.get(f"/api/v10/channels/{g.channel_id}/messages", headers=g.owner.headers), 200) == []
    # All already banned: none banned is Discord's 500000.
    error(client.post(url, json={"user_ids": [str(g.plain.id)]}, headers=g.mod.headers), 400, 500000)
    assert field_error_codes(client.post(url, json={"user_ids": [str(i + 1) for i in range(201)]},
                                         headers=g.mod.headers), "user_ids") == ["BASE_TYPE_MAX_LENGTH"]


# -- search -----------------------------------------------------------------------------------------------------

def test_member_search_matches_username_and_nick_prefixes(client, guild):
    g = guild
    json_body(patch(client, g, g.owner, g.plain.id, nick="junebug"), 200)
    url = f"/api/v10/guilds/{g.guild_id}/members/search"
    found = json_body(client.get(url, query_string={"query": "JUN", "limit": 10}, headers=g.plain.headers), 200)
    assert sorted(m["user"]["id"] for m in found) == sorted([str(g.junior.id), str(g.plain.id)])
    assert len(json_body(client.get(url, query_string={"query": "jun"}, headers=g.plain.headers), 200)) == 1
    assert json_body(client.get(url, query_string={"query": "%"}, headers=g.plain.headers), 200) == []
    assert field_error_codes(client.get(url, headers=g.plain.headers), "query") == ["BASE_TYPE_REQUIRED"]
    assert field_error_codes(client.get(url, query_string={"query": "ju\x00"}, headers=g.plain.headers),
                             "query") == ["STRING_TYPE_INVALID_CHARACTERS"]
    assert field_error_codes(client.get(url, query_string={"query": "a", "limit": 0}, headers=g.plain.headers),
                             "limit") == ["NUMBER_TYPE_MIN"]
    error(client.get(url, query_string={"query": "a"}, headers=g.outsider.headers), 403, 50001)
