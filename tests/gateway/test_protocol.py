"""The gateway at the WebSocket level, against real gunicorn (one gevent worker) on SQLite and on PostgreSQL: the
lifecycle, every close code, dispatch filtering (intents, MESSAGE_CONTENT, VIEW_CHANNEL, shards), membership
changes, op 8, RESUME and the metrics. One server per database; each test uses its own connections."""
from __future__ import annotations

import contextlib
import http.client
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, update

from app.auth.permissions import Permission
from app.events.base import partition_of
from app.events.sql import SqlEventBus
from app.extensions import Resources
from app.gateway.protocol import PRIVILEGED_INTENTS, Intent
from models import User, gateway_identifies
from tests.support.databases import migrated_database
from tests.support.factories import Actor, Factory
from tests.support.gateway import Closed, GatewayClient
from tests.support.http import JsonClient
from tests.support.server import RunningServer, gunicorn_server, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

PARTITIONS = 4
HEARTBEAT_MS = 1000
ALL_GUILD = int(Intent.GUILDS | Intent.GUILD_MEMBERS | Intent.GUILD_MESSAGES | Intent.GUILD_MESSAGE_REACTIONS
                | Intent.MESSAGE_CONTENT)
NO_CONTENT = ALL_GUILD & ~int(Intent.MESSAGE_CONTENT | Intent.GUILD_MEMBERS)
LIMITED_TOTAL = 200


@dataclass
class World:
    server: RunningServer
    resources: Resources
    owner: Actor  # owns the guild, writes over REST
    bot: Actor  # a member with every privileged intent allowed
    plain: Actor  # a member with none allowed
    outsider: Actor  # in no guild
    limited: Actor  # has used up its session start limit
    guild_id: int
    general: int
    second: int
    #: The outsider's consent to being added to the guild by the owner (an access token with guilds.join).
    outsider_consent: str

    @property
    def ws_url(self) -> str:
        return self.server.url.replace("http://", "ws://") + "/gateway"

    def rest(self, actor: Actor) -> JsonClient:
        return JsonClient(self.server.url, actor.token)

    def say(self, channel_id: int, content: str, actor: Actor | None = None) -> dict:
        status, body = self.rest(actor or self.owner).post(f"/channels/{channel_id}/messages",
                                                           {"content": content})
        assert status == 200, body
        return body

    def connect(self, actor: Actor, intents: int, *, compress: bool = False, **extra) -> tuple[GatewayClient, dict]:
        client = GatewayClient(self.ws_url, compress=compress)
        return client, client.identify(actor.token, intents, **extra)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp("gateway")
    with migrated_database(request.param, directory) as base:
        resources = Resources(base.replace(event_partitions=PARTITIONS))
        make = Factory(resources)
        owner, bot, plain, outsider, limited = (make.actor(n) for n in ("gw-owner", "gw-bot", "gw-plain",
                                                                         "gw-outsider", "gw-limited"))
        guild_id, general = make.guild(owner)
        second = make.channel(guild_id, "second")
        for actor in (bot, plain, limited):
            make.member(guild_id, actor)
        now = datetime.now(timezone.utc)
        with resources.engine.begin() as connection:
            connection.execute(update(User).where(User.id == bot.id).values(privileged_intents=PRIVILEGED_INTENTS))
            connection.execute(insert(gateway_identifies), [{"user_id": limited.id, "identified_at": now}
                                                             for _ in range(LIMITED_TOTAL)])
        environment = {"DATABASE_URL": base.database_url, "WEB_WORKERS": "1", "RATE_LIMIT_ENABLED": "false",
                       "EVENT_PARTITIONS": str(PARTITIONS), "GATEWAY_HEARTBEAT_INTERVAL_MS": str(HEARTBEAT_MS),
                       "GATEWAY_MAX_CONCURRENCY": "1000", "GATEWAY_SESSION_START_LIMIT": str(LIMITED_TOTAL)}
        try:
            with gunicorn_server(environment) as server:
                yield World(server, resources, owner, bot, plain, outsider, limited, guild_id, general, second,
                            outsider_consent=make.grant(outsider, owner))
        finally:
            resources.close()


# -- discovery and the lifecycle ---------------------------------------------------------------------------------

def test_gateway_routes_name_the_websocket_and_the_start_limit(world):
    status, body = JsonClient(world.server.url, "").get("/gateway")
    assert status == 200 and body == {"url": world.ws_url}
    status, body = world.rest(world.limited).get("/gateway/bot")
    assert status == 200, body
    assert body["url"] == world.ws_url and body["shards"] == 1
    limit = body["session_start_limit"]
    assert limit["total"] == LIMITED_TOTAL and limit["remaining"] == 0 and limit["max_concurrency"] == 1000
    assert 0 < limit["reset_after"] <= 24 * 3600 * 1000


def test_identify_gets_ready_then_guild_create_through_zlib_stream(world):
    client, ready = world.connect(world.bot, ALL_GUILD, compress=True)
    try:
        assert client.hello == {"op": 10, "d": {"heartbeat_interval": HEARTBEAT_MS}, "s": None, "t": None}
        assert ready["v"] == 10 and ready["user"]["id"] == str(world.bot.id) and ready["shard"] == [0, 1]
        assert ready["guilds"] == [{"id": str(world.guild_id), "unavailable": True}]
        assert ready["application"] == {"id": str(world.bot.id), "flags": 0}
        assert ready["resume_gateway_url"] == world.ws_url and ready["session_id"]
        guild = client.dispatches(1)[0]
        assert guild["t"] == "GUILD_CREATE" and guild["s"] == 2
        d = guild["d"]
        assert d["id"] == str(world.guild_id) and d["member_count"] == 4
        assert {c["id"] for c in d["channels"]} >= {str(world.general), str(world.second)}
        assert [m["user"]["id"] for m in d["members"]] == [str(world.bot.id)]
        assert str(world.guild_id) in {r["id"] for r in d["roles"]}
        # Every frame was binary and decoded with one decompressobj (the suffix test is in the client).
        assert client.binary_frames >= 3 and client.text_frames == 0
    finally:
        client.close()


def test_message_create_carries_guild_member_and_content(world):
    client, _ = world.connect(world.bot, ALL_GUILD)
    try:
        client.dispatches(1)
        sent = world.say(world.general, "hello gateway")
        event = client.until(lambda p: p["t"] == "MESSAGE_CREATE")
        assert event["d"]["id"] == sent["id"] and event["d"]["content"] == "hello gateway"
        assert event["d"]["guild_id"] == str(world.guild_id)
        assert event["d"]["author"]["id"] == str(world.owner.id)
        assert "joined_at" in event["d"]["member"] and "user" not in event["d"]["member"]
        assert event["s"] == 3 and client.text_frames >= 3 and client.binary_frames == 0
    finally:
        client.close()


def test_without_message_content_only_mentions_keep_content(world):
    client, _ = world.connect(world.plain, NO_CONTENT)
    try:
        client.dispatches(1)
        world.say(world.general, "secret words")
        plain = client.until(lambda p: p["t"] == "MESSAGE_CREATE")
        assert plain["d"]["content"] == "" and plain["d"]["embeds"] == []
        world.say(world.general, f"hey <@{world.plain.id}>")
        mentioned = client.until(lambda p: p["t"] == "MESSAGE_CREATE")
        assert mentioned["d"]["content"] == f"hey <@{world.plain.id}>"
        world.say(world.general, "my own words", actor=world.plain)
        own = client.until(lambda p: p["t"] == "MESSAGE_CREATE")
        assert own["d"]["content"] == "my own words"
        # A reply carries the message it answers, a message object stripped alike.
        status, reply = world.rest(world.owner).post(f"/channels/{world.general}/messages", {
            "content": "a reply", "message_reference": {"message_id": plain["d"]["id"]}})
        assert status == 200, reply
        replied = client.until(lambda p: p["t"] == "MESSAGE_CREATE")
        assert replied["d"]["content"] == "" and replied["d"]["referenced_message"]["id"] == plain["d"]["id"]
        assert replied["d"]["referenced_message"]["content"] == ""
    finally:
        client.close()


def test_intents_filter_dispatches(world):
    client, _ = world.connect(world.bot, int(Intent.GUILDS))
    try:
        client.dispatches(1)
        world.say(world.general, "not for guilds-only sessions")
        status, _ = world.rest(world.owner).post(f"/guilds/{world.guild_id}/roles", {"name": "marker"})
        assert status == 200
        role = client.until(lambda p: p["t"] != "GUILD_CREATE")
        assert role["t"] == "GUILD_ROLE_CREATE" and not any(p["t"] == "MESSAGE_CREATE" for p in client.skipped)
    finally:
        client.close()


def test_bans_need_guild_moderation_and_audit_entries_also_view_audit_log(world):
    moderating = int(Intent.GUILDS | Intent.GUILD_MODERATION)
    owner_session, _ = world.connect(world.owner, moderating)
    bot_session, _ = world.connect(world.bot, moderating)  # a plain member: no VIEW_AUDIT_LOG
    guilds_only, _ = world.connect(world.plain, int(Intent.GUILDS))
    owner = world.rest(world.owner)
    ban = f"/guilds/{world.guild_id}/bans/{world.outsider.id}"
    try:
        for session in (owner_session, bot_session, guilds_only):
            session.dispatches(1)
        assert owner.exchange("PUT", ban, {})[0] == 204
        assert owner.delete(ban)[0] == 204
        assert owner.post(f"/guilds/{world.guild_id}/roles", {"name": "after the ban"})[0] == 200
        entry = owner_session.until(lambda p: p["t"] == "GUILD_AUDIT_LOG_ENTRY_CREATE")
        assert (entry["d"]["action_type"], entry["d"]["target_id"]) == (22, str(world.outsider.id))
        assert bot_session.until(lambda p: p["t"] == "GUILD_BAN_ADD")["d"]["user"]["id"] == str(world.outsider.id)
        assert bot_session.until(lambda p: p["t"] == "GUILD_BAN_REMOVE")["d"]["guild_id"] == str(world.guild_id)
        bot_session.until(lambda p: p["t"] == "GUILD_ROLE_CREATE")
        assert not any(p["t"] == "GUILD_AUDIT_LOG_ENTRY_CREATE" for p in bot_session.skipped)
        guilds_only.until(lambda p: p["t"] == "GUILD_ROLE_CREATE")
        assert not any(p["t"].startswith(("GUILD_BAN", "GUILD_AUDIT")) for p in guilds_only.skipped)
    finally:
        for session in (owner_session, bot_session, guilds_only):
            session.close()


def test_a_timed_out_member_gets_no_audit_entries_as_the_audit_log_route_refuses_them(world):
    owner = world.rest(world.owner)
    status, auditor = owner.post(f"/guilds/{world.guild_id}/roles",
                                 {"name": "auditor", "permissions": str(int(Permission.VIEW_AUDIT_LOG))})
    assert status == 200, auditor
    assert owner.exchange("PUT", f"/guilds/{world.guild_id}/members/{world.bot.id}/roles/{auditor['id']}",
                          None)[0] == 204
    until = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    status, member = owner.exchange("PATCH", f"/guilds/{world.guild_id}/members/{world.bot.id}",
                                    {"communication_disabled_until": until})[::2]
    assert status == 200, member
    assert world.rest(world.bot).get(f"/guilds/{world.guild_id}/audit-logs")[0] == 403
    session, _ = world.connect(world.bot, int(Intent.GUILDS | Intent.GUILD_MODERATION))
    try:
        session.dispatches(1)
        assert owner.post(f"/guilds/{world.guild_id}/roles", {"name": "while timed out"})[0] == 200
        assert owner.post(f"/guilds/{world.guild_id}/roles", {"name": "marker"})[0] == 200
        # The second role's event comes after the first role's audit entry.
        session.until(lambda p: p["t"] == "GUILD_ROLE_CREATE" and p["d"]["role"]["name"] == "marker")
        assert not any(p["t"] == "GUILD_AUDIT_LOG_ENTRY_CREATE" for p in session.skipped)
    finally:
        session.close()
        owner.exchange("PATCH", f"/guilds/{world.guild_id}/members/{world.bot.id}",
                       {"communication_disabled_until": None})


def test_view_channel_is_recomputed_on_overwrite_changes_without_reconnecting(world):
    client, _ = world.connect(world.bot, ALL_GUILD)
    owner = world.rest(world.owner)
    overwrite = f"/channels/{world.second}/permissions/{world.bot.id}"
    try:
        client.dispatches(1)
        status, _ = owner.exchange("PUT", overwrite, {"type": 1, "deny": str(int(Permission.VIEW_CHANNEL))})[::2]
        assert status == 204
        hidden = client.until(lambda p: p["t"].startswith("CHANNEL_"))
        assert hidden["t"] == "CHANNEL_DELETE" and hidden["d"]["id"] == str(world.second)
        world.say(world.second, "you cannot see this")
        world.say(world.general, "but this")
        seen = client.until(lambda p: p["t"] == "MESSAGE_CREATE")
        assert seen["d"]["content"] == "but this"
        status, _ = owner.delete(overwrite)
        assert status == 204
        shown = client.until(lambda p: p["t"].startswith("CHANNEL_"))
        assert shown["t"] == "CHANNEL_CREATE" and shown["d"]["id"] == str(world.second)
        world.say(world.second, "visible again")
        assert client.until(lambda p: p["t"] == "MESSAGE_CREATE")["d"]["content"] == "visible again"
    finally:
        client.close()


def test_guild_create_on_join_and_guild_delete_on_removal(world):
    client, ready = world.connect(world.outsider, int(Intent.GUILDS | Intent.GUILD_MESSAGES))
    owner = world.rest(world.owner)
    member = f"/guilds/{world.guild_id}/members/{world.outsider.id}"
    try:
        assert ready["guilds"] == []
        status, _ = owner.exchange("PUT", member, {"access_token": world.outsider_consent})[::2]
        assert status == 201
        joined = client.dispatches(1)[0]
        assert joined["t"] == "GUILD_CREATE" and joined["d"]["id"] == str(world.guild_id)
        world.say(world.general, "welcome")
        assert client.until(lambda p: p["t"] == "MESSAGE_CREATE")["d"]["content"] == ""
        status, _ = owner.delete(member)
        assert status == 204
        left = client.dispatches(1)[0]
        assert left["t"] == "GUILD_DELETE" and left["d"] == {"id": str(world.guild_id)}
        world.say(world.general, "after leaving")
        status, _ = owner.post(f"/guilds/{world.guild_id}/roles", {"name": "after"})
        with pytest.raises(TimeoutError):
            client.dispatches(1, timeout=1.5)
    finally:
        client.close()


def test_direct_messages_reach_their_two_users_only_with_content_and_the_dm_intents(world):
    status, dm = world.rest(world.bot).post("/users/@me/channels", {"recipient_id": str(world.owner.id)})
    assert status == 200 and dm["type"] == 1, dm
    dm_intents = int(Intent.GUILDS | Intent.DIRECT_MESSAGES | Intent.DIRECT_MESSAGE_REACTIONS)
    recipient, _ = world.connect(world.bot, dm_intents)
    without_intent, _ = world.connect(world.bot, int(Intent.GUILDS | Intent.GUILD_MESSAGES))
    stranger, _ = world.connect(world.plain, dm_intents | int(Intent.GUILD_MESSAGES))
    # Discord sends a DM's events to shard 0 only.
    other_shard, _ = world.connect(world.bot, dm_intents, shard=[1, 2])
    try:
        for client in (recipient, without_intent, stranger):
            client.dispatches(1)
        sent = world.say(int(dm["id"]), "just between us")
        # Content is kept without MESSAGE_CONTENT: it does not apply to DMs.
        event = recipient.until(lambda p: p["t"] == "MESSAGE_CREATE")
        assert event["d"]["id"] == sent["id"] and event["d"]["content"] == "just between us"
        assert event["d"]["channel_id"] == dm["id"] and "guild_id" not in event["d"]
        with pytest.raises(TimeoutError):
            other_shard.until(lambda p: p["t"] == "MESSAGE_CREATE", timeout=1.5)
        status, _ = world.rest(world.owner).exchange(
            "PUT", f"/channels/{dm['id']}/messages/{sent['id']}/reactions/%F0%9F%91%8D/@me")[::2]
        assert status == 204
        reaction = recipient.until(lambda p: p["t"] == "MESSAGE_REACTION_ADD")
        assert reaction["d"]["message_id"] == sent["id"]
        # A guild message sent after the DM reaches the sessions that follow the guild: the DM's events, sent
        # before it, would have arrived first.
        world.say(world.general, "a guild message after the DM")
        for client in (without_intent, stranger):
            first = client.until(lambda p: p["t"] == "MESSAGE_CREATE")
            assert first["d"]["content"] in ("", "a guild message after the DM")
            assert first["d"]["channel_id"] == str(world.general)
            assert not any(p["d"].get("channel_id") == dm["id"] for p in client.skipped)
    finally:
        for client in (recipient, without_intent, stranger, other_shard):
            client.close()


def test_shards_route_guilds_by_id(world):
    shard = (world.guild_id >> 22) % 2
    holding, ready = world.connect(world.bot, ALL_GUILD, shard=[shard, 2])
    other, other_ready = world.connect(world.bot, ALL_GUILD, shard=[1 - shard, 2])
    try:
        assert [g["id"] for g in ready["guilds"]] == [str(world.guild_id)]
        assert other_ready["guilds"] == [] and other_ready["shard"] == [1 - shard, 2]
    finally:
        holding.close()
        other.close()


def test_request_guild_members_answers_with_chunks(world):
    client, _ = world.connect(world.bot, ALL_GUILD)
    try:
        client.dispatches(1)
        client.send(8, {"guild_id": str(world.guild_id), "query": "", "limit": 0, "nonce": "n1"})
        chunk = client.until(lambda p: p["t"] == "GUILD_MEMBERS_CHUNK")["d"]
        assert chunk["nonce"] == "n1" and chunk["chunk_count"] == 1
        assert {world.owner.id, world.bot.id, world.plain.id} <= {int(m["user"]["id"]) for m in chunk["members"]}
        client.send(8, {"guild_id": str(world.guild_id), "user_ids": [str(world.plain.id), "1"], "limit": 0})
        chunk = client.until(lambda p: p["t"] == "GUILD_MEMBERS_CHUNK")["d"]
        assert [m["user"]["id"] for m in chunk["members"]] == [str(world.plain.id)] and chunk["not_found"] == ["1"]
    finally:
        client.close()


def test_heartbeat_is_acknowledged_and_silence_closes_4009(world):
    client = GatewayClient(world.ws_url, answer_heartbeat_requests=False)
    client.identify(world.bot.token, ALL_GUILD)
    try:
        client.send(1, None)
        ack = next(p for p in iter(lambda: client.receive(), None) if p["op"] == 11)
        assert ack == {"op": 11, "d": None, "s": None, "t": None}
        started = time.monotonic()
        seen_request = False
        with pytest.raises(Closed) as closed:
            while True:
                seen_request |= client.receive(timeout=10)["op"] == 1
        assert closed.value.code == 4009 and seen_request
        assert time.monotonic() - started < HEARTBEAT_MS / 1000 * 1.5 + 3
    finally:
        client.close()


# -- close codes -------------------------------------------------------------------------------------------------

def _identify_payload(actor: Actor, intents: int = ALL_GUILD, **extra) -> dict:
    return {"token": actor.token, "intents": intents, "properties": {}, **extra}


@pytest.mark.parametrize(("name", "send", "code"), [
    ("bad json", lambda c, w: c.send_raw("{not json"), 4002),
    ("not an object", lambda c, w: c.send_raw("[1, 2]"), 4002),
    ("too big", lambda c, w: c.send_raw('{"op": 1, "d": null, "pad": "' + "x" * 5000 + '"}'), 4002),
    ("unknown op", lambda c, w: c.send(5, {}), 4001),
    ("before identify", lambda c, w: c.send(8, {"guild_id": "1", "query": "", "limit": 0}), 4003),
    ("bad token", lambda c, w: c.send(2, {"token": "nope.nope", "intents": 1, "properties": {}}), 4004),
    ("bad shard", lambda c, w: c.send(2, _identify_payload(w.bot, shard=[2, 2])), 4010),
    ("unknown intents", lambda c, w: c.send(2, _identify_payload(w.bot, 1 << 30)), 4013),
    ("privileged", lambda c, w: c.send(2, _identify_payload(w.plain, int(Intent.MESSAGE_CONTENT))), 4014),
    ("start limit", lambda c, w: c.send(2, _identify_payload(w.limited, int(Intent.GUILDS))), 4008),
])
def test_close_codes(world, name, send, code):
    client = GatewayClient(world.ws_url)
    try:
        send(client, world)
        assert client.close_code() == code, name
    finally:
        client.close()


def test_a_connection_that_never_identifies_is_closed_4003_even_if_it_heartbeats(world):
    client = GatewayClient(world.ws_url)
    started = time.monotonic()
    try:
        with pytest.raises(Closed) as closed:
            while True:
                client.send(1, None)
                assert client.receive()["op"] == 11
                with contextlib.suppress(TimeoutError):  # a pause that still reads the close frame when it comes
                    client.receive(timeout=HEARTBEAT_MS / 1000 / 4)
        assert closed.value.code == 4003
        assert 2 * HEARTBEAT_MS / 1000 <= time.monotonic() - started < 2 * HEARTBEAT_MS / 1000 + 3
    finally:
        client.close()


def test_identify_twice_closes_4005(world):
    client, _ = world.connect(world.bot, ALL_GUILD)
    try:
        client.send(2, _identify_payload(world.bot))
        assert client.close_code() == 4005
    finally:
        client.close()


def test_more_than_120_sends_a_minute_closes_4008(world):
    client = GatewayClient(world.ws_url)
    try:
        for _ in range(121):
            client.send(1, None)
        assert client.close_code() == 4008
    finally:
        client.close()


@pytest.mark.parametrize(("query", "code"), [("v=8&encoding=json", 4012), ("v=10&encoding=etf", 4002)])
def test_unsupported_version_or_encoding_closes(world, query, code):
    with pytest.raises(Closed) as closed:
        GatewayClient(world.ws_url, query=query)
    assert closed.value.code == code


# -- resume ------------------------------------------------------------------------------------------------------

def test_resume_replays_what_was_missed_once_then_resumed(world):
    client, ready = world.connect(world.bot, ALL_GUILD, compress=True)
    client.dispatches(1)
    world.say(world.general, "before the drop")
    client.until(lambda p: p["t"] == "MESSAGE_CREATE")
    seq = client.sequence
    client.ws.sock.close()  # the connection drops without a close frame
    missed = [world.say(world.general, f"missed {n}")["id"] for n in range(3)]
    resumed = GatewayClient(world.ws_url, compress=True)
    try:
        resumed.send(6, {"token": world.bot.token, "session_id": ready["session_id"], "seq": seq})
        # Each missed message exactly once, in order, with the sequence numbers following the client's; some may
        # reach the stream only after RESUMED (the REST answer does not wait for the relay), then live.
        dispatches = [resumed.until(lambda p: p["t"] == "RESUMED")]
        dispatches = [p for p in resumed.skipped if p["op"] == 0] + dispatches
        while sum(p["t"] == "MESSAGE_CREATE" for p in dispatches) < len(missed):
            dispatches.append(resumed.until(lambda p: p["t"] == "MESSAGE_CREATE"))
        assert [p["d"]["id"] for p in dispatches if p["t"] == "MESSAGE_CREATE"] == missed
        assert [p["s"] for p in dispatches] == list(range(seq + 1, seq + 1 + len(dispatches)))
        after = world.say(world.general, "live again")
        assert resumed.until(lambda p: p["t"] == "MESSAGE_CREATE")["d"]["id"] == after["id"]
    finally:
        resumed.close()


def test_resume_of_an_unknown_session_is_invalid(world):
    client = GatewayClient(world.ws_url)
    try:
        client.send(6, {"token": world.bot.token, "session_id": "no-such-session", "seq": 3})
        assert client.receive() == {"op": 9, "d": False, "s": None, "t": None}
    finally:
        client.close()


def test_resume_with_a_seq_never_sent_closes_4007(world):
    client, ready = world.connect(world.bot, ALL_GUILD)
    client.dispatches(1)
    client.close()
    resumed = GatewayClient(world.ws_url)
    try:
        resumed.send(6, {"token": world.bot.token, "session_id": ready["session_id"], "seq": 99})
        assert resumed.close_code() == 4007
    finally:
        resumed.close()


def test_resume_past_retention_is_invalid(world):
    client, ready = world.connect(world.bot, ALL_GUILD)
    client.dispatches(1)
    seq = client.sequence
    client.close()
    bus = SqlEventBus(world.resources.engine, PARTITIONS, max_events=1)
    partition = partition_of(world.guild_id, None, PARTITIONS)
    published = int(bus.latest_position(partition) or 0)
    for n in range(3):
        world.say(world.general, f"trimmed {n}")
    wait_for(lambda: int(bus.latest_position(partition) or 0) >= published + 3, 10, "the relay to publish")
    assert bus.trim() > 0
    resumed = GatewayClient(world.ws_url)
    try:
        resumed.send(6, {"token": world.bot.token, "session_id": ready["session_id"], "seq": seq})
        payload = next(p for p in iter(lambda: resumed.receive(), None) if p["op"] != 11)
        assert payload == {"op": 9, "d": False, "s": None, "t": None}
    finally:
        resumed.close()


def _gateway_metrics(world) -> dict[str, float]:
    connection = http.client.HTTPConnection(world.server.host, world.server.port, timeout=10)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith("chatstore_gateway_")}


def test_metrics_count_sessions_dispatches_and_closes(world):
    client, _ = world.connect(world.bot, ALL_GUILD)
    try:
        client.dispatches(1)
        assert _gateway_metrics(world)["chatstore_gateway_sessions"] >= 1
        # Dispatch counts reach the metric within a second (the hub batches them).
        values = wait_for(lambda: (m := _gateway_metrics(world)).get(
            'chatstore_gateway_dispatches_total{type="READY"}') and m, 10, "the dispatch count")
    finally:
        client.close()
    assert values["chatstore_gateway_dispatches_total{type=\"GUILD_CREATE\"}"] >= 1
    refused = GatewayClient(world.ws_url)
    refused.send_raw("{not json")
    assert refused.close_code() == 4002
    assert _gateway_metrics(world)['chatstore_gateway_closes_total{code="4002"}'] >= 1


def test_webhooks_update_needs_guild_webhooks_and_a_webhook_message_arrives_as_any(world):
    hooks, _ = world.connect(world.bot, int(Intent.GUILDS | Intent.GUILD_WEBHOOKS | Intent.GUILD_MESSAGES
                                            | Intent.MESSAGE_CONTENT))
    without, _ = world.connect(world.plain, int(Intent.GUILDS | Intent.GUILD_MESSAGES))
    try:
        hooks.dispatches(1)
        without.dispatches(1)
        status, hook = world.rest(world.owner).post(f"/channels/{world.general}/webhooks", {"name": "gw hook"})
        assert status == 200, hook
        update_ = hooks.until(lambda p: p["t"] == "WEBHOOKS_UPDATE")
        assert update_["d"] == {"channel_id": str(world.general), "guild_id": str(world.guild_id)}
        status, sent = world.rest(world.owner).post(f"/webhooks/{hook['id']}/{hook['token']}?wait=true",
                                                    {"content": "from the hook", "username": "Smee"})
        assert status == 200, sent
        created = hooks.until(lambda p: p["t"] == "MESSAGE_CREATE")["d"]
        assert (created["id"], created["webhook_id"], created["content"]) == (sent["id"], hook["id"], "from the hook")
        assert created["author"]["id"] == hook["id"] and created["author"]["username"] == "Smee"
        assert created["author"]["bot"] is True
        without.until(lambda p: p["t"] == "MESSAGE_CREATE" and p["d"]["id"] == sent["id"])
        assert not any(p["t"] == "WEBHOOKS_UPDATE" for p in without.skipped)
    finally:
        hooks.close()
        without.close()


def test_thread_events_reach_those_who_see_the_thread(world):
    """A private thread and what happens in it reach its members only; adding one tells them, and their next
    GUILD_CREATE lists the active threads they see."""
    client, _ = world.connect(world.bot, ALL_GUILD)
    plain, _ = world.connect(world.plain, NO_CONTENT)
    owner = world.rest(world.owner)
    try:
        client.dispatches(1)
        plain.dispatches(1)
        status, secret = owner.post(f"/channels/{world.general}/threads", {"name": "secret", "type": 12})
        assert status == 201, secret
        status, open_ = owner.post(f"/channels/{world.general}/threads", {"name": "open", "type": 11})
        assert status == 201, open_
        created = client.until(lambda p: p["t"] == "THREAD_CREATE")
        assert created["d"]["id"] == open_["id"] and created["d"]["newly_created"] is True
        world.say(int(secret["id"]), "members only")
        world.say(int(open_["id"]), "for everyone")
        seen = client.until(lambda p: p["t"] == "MESSAGE_CREATE")
        assert seen["d"]["content"] == "for everyone"
        status, _ = owner.exchange("PUT", f"/channels/{secret['id']}/thread-members/{world.bot.id}", None)[::2]
        assert status == 204
        added = client.until(lambda p: p["t"] == "THREAD_MEMBERS_UPDATE")
        assert added["d"]["id"] == secret["id"]
        assert [m["user_id"] for m in added["d"]["added_members"]] == [str(world.bot.id)]
        told = client.until(lambda p: p["t"] == "THREAD_CREATE")
        assert told["d"]["id"] == secret["id"] and told["d"]["member"]["user_id"] == str(world.bot.id)
        world.say(int(secret["id"]), "now you see it")
        assert client.until(lambda p: p["t"] == "MESSAGE_CREATE")["d"]["content"] == "now you see it"
        # The plain member never heard of the private thread, nor of the bot joining it (no GUILD_MEMBERS).
        seen_by_plain = [(p["t"], p["d"]["id"] if p["t"] == "THREAD_CREATE" else p["d"]["content"])
                         for p in plain.dispatches(2)]
        assert seen_by_plain == [("THREAD_CREATE", open_["id"]), ("MESSAGE_CREATE", "")]
        with pytest.raises(TimeoutError):
            plain.dispatches(1, timeout=1.0)
    finally:
        client.close()
        plain.close()
    again, _ = world.connect(world.bot, ALL_GUILD)
    other, _ = world.connect(world.plain, NO_CONTENT)
    try:
        threads = {t["id"] for t in again.dispatches(1)[0]["d"]["threads"]}
        assert {secret["id"], open_["id"]} <= threads
        assert secret["id"] not in {t["id"] for t in other.dispatches(1)[0]["d"]["threads"]}
    finally:
        again.close()
        other.close()


def test_a_private_threads_delete_reaches_those_who_could_see_it_only(world):
    """THREAD_DELETE is recorded on the parent; a private thread's goes to its members and MANAGE_THREADS holders,
    not to every viewer of the parent, who never learnt of the thread."""
    member, _ = world.connect(world.bot, ALL_GUILD)
    plain, _ = world.connect(world.plain, NO_CONTENT)
    owner = world.rest(world.owner)
    try:
        member.dispatches(1)
        plain.dispatches(1)
        status, secret = owner.post(f"/channels/{world.second}/threads", {"name": "doomed secret", "type": 12})
        assert status == 201, secret
        status, _ = owner.exchange("PUT", f"/channels/{secret['id']}/thread-members/{world.bot.id}", None)[::2]
        assert status == 204
        world.say(int(secret["id"]), "before the end")
        assert member.until(lambda p: p["t"] == "MESSAGE_CREATE")["d"]["content"] == "before the end"
        status, open_ = owner.post(f"/channels/{world.second}/threads", {"name": "doomed open", "type": 11})
        assert status == 201, open_
        # (A thread gone before its THREAD_CREATE is fanned out is not announced at all: let it arrive first.)
        assert plain.until(lambda p: p["t"] == "THREAD_CREATE")["d"]["id"] == open_["id"]
        for thread in (secret, open_):
            status, _ = owner.exchange("DELETE", f"/channels/{thread['id']}", None)[::2]
            assert status == 200
        deleted = [member.until(lambda p: p["t"] == "THREAD_DELETE")["d"] for _ in range(2)]
        assert [(d["id"], d["type"]) for d in deleted] == [(secret["id"], 12), (open_["id"], 11)]
        assert [(p["t"], p["d"]["id"]) for p in plain.dispatches(1)] == [("THREAD_DELETE", open_["id"])]
        with pytest.raises(TimeoutError):
            plain.dispatches(1, timeout=1.0)
    finally:
        member.close()
        plain.close()
