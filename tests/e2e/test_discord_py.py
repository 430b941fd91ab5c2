"""discord.py's HTTP layer, unmodified, against real gunicorn (2 gevent workers) on SQLite and on PostgreSQL.

The database gets a bot, a friend, a guild and several 10-day buckets of back-dated history imported with
``flask messages import``; then tests/e2e/discord_client_scenario.py logs in with discord.py, in a plain Python
process (asyncio and aiohttp are unreliable under this process's gevent patch), exercises the message API and
reports what the client observed. The tests below check that report against what was imported and sent.
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest

from app import create_app
from app.ids import bucket_of, snowflake_from_ms, snowflake_time
from tests.e2e.scenarios import run_scenario
from tests.scylla.stores import apply_migrations
from tests.support.cqlnode.control import RemoteCluster
from tests.support.databases import migrated_database
from tests.support.factories import Actor, Factory
from tests.support.server import gunicorn_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(360)]

SCENARIO_TIMEOUT = 150
HISTORY_START = datetime(2025, 1, 1, tzinfo=timezone.utc)
IMPORTED_COUNT = 240
IMPORTED_SPACING = timedelta(hours=6)  # 240 messages over 60 days: six or seven buckets
PINNED_INDEXES = (10, 100)
BEFORE_TIME = HISTORY_START + timedelta(days=20, hours=1)
AFTER_TIME = HISTORY_START + timedelta(days=50, minutes=30)
CUSTOM_EMOJI = "<:blobwave:987654321098765432>"


@dataclass(frozen=True)
class Seed:
    bot: Actor
    friend: Actor
    guild_id: int
    channel_id: int
    imported: list[int]  # oldest first

    @property
    def pinned(self) -> list[int]:
        return [self.imported[i] for i in PINNED_INDEXES]


def imported_history(channel_id: int, author_id: int) -> list[dict]:
    lines = []
    for index in range(IMPORTED_COUNT):
        moment = HISTORY_START + index * IMPORTED_SPACING
        lines.append({"id": str(snowflake_from_ms(int(moment.timestamp() * 1000))), "channel_id": str(channel_id),
                      "author": {"id": str(author_id)}, "content": f"imported {index}",
                      "pinned": index in PINNED_INDEXES})
    return lines


def seed_database(settings, tmp_path) -> Seed:
    """Users, tokens, guild and channel through the factories; history through the import command."""
    app = create_app(settings)
    try:
        make = Factory(app.extensions["chatstore"])
        bot, friend = make.actor("e2e-bot"), make.actor("e2e-friend")
        guild_id, channel_id = make.guild(bot, name="e2e guild")
        make.member(guild_id, friend)
        lines = imported_history(channel_id, bot.id)
        path = tmp_path / "history.jsonl"
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        result = app.test_cli_runner().invoke(args=["messages", "import", str(path)])
        assert result.exit_code == 0, result.output
    finally:
        app.extensions["chatstore"].close()
    return Seed(bot, friend, guild_id, channel_id, [int(line["id"]) for line in lines])


def run_client_scenario(server, seed: Seed) -> dict:
    imported = seed.imported
    config = {
        "base_url": server.url, "token": seed.bot.token, "friend_token": seed.friend.token,
        "channel_id": seed.channel_id, "after_id": imported[40], "before_id": imported[200],
        "around_id": imported[120], "before_time": BEFORE_TIME.isoformat(), "after_time": AFTER_TIME.isoformat(),
        "old_message_id": imported[10],
        "timeout": SCENARIO_TIMEOUT,
    }
    return run_scenario("discord_client_scenario.py", config, server)


@contextlib.contextmanager
def message_store_for(backend: str, settings):
    """Settings and server environment: messages in the SQL database, or ("scylla") on CQL test nodes run in a
    subprocess that the gunicorn workers reach over loopback."""
    if backend != "scylla":
        yield settings, {}
        return
    with RemoteCluster(nodes=3, first_address=80) as nodes:
        scylla = settings.replace(message_store="scylla", scylla_hosts=tuple(nodes.contact_points),
                                  scylla_port=nodes.port, scylla_keyspace="chatstore_e2e")
        apply_migrations(scylla)
        yield scylla, {"MESSAGE_STORE": "scylla", "SCYLLA_HOSTS": ",".join(nodes.contact_points),
                       "SCYLLA_PORT": str(nodes.port), "SCYLLA_KEYSPACE": "chatstore_e2e"}


@pytest.fixture(scope="module", params=["sqlite", "postgres", "scylla"])
def observed(request, tmp_path_factory):
    """(seed, report): one scenario run per backend, shared by the tests of this module."""
    tmp_path = tmp_path_factory.mktemp(f"e2e-{request.param}")
    database = "sqlite" if request.param == "scylla" else request.param
    with migrated_database(database, tmp_path) as sql_settings, \
            message_store_for(request.param, sql_settings) as (settings, store_environment):
        seed = seed_database(settings, tmp_path)
        assert len({bucket_of(i) for i in seed.imported}) >= 6
        with gunicorn_server({"DATABASE_URL": settings.database_url, "WEB_WORKERS": "2",
                              **store_environment}) as server:
            yield seed, run_client_scenario(server, seed)


def test_login_and_fetch_channel(observed):
    seed, report = observed
    assert report["user"] == {"id": seed.bot.id, "name": "e2e-bot", "bot": True}
    assert report["application_id"] == seed.bot.id
    assert report["channel"] == {"id": seed.channel_id, "name": "general", "type": "text", "guild_id": seed.guild_id,
                                 "last_message_id": seed.imported[-1]}


def test_send(observed):
    seed, report = observed
    sent = report["sent"]
    assert [m["content"] for m in sent] == ["live 0", "live 1", "live 2"]
    assert all(m["author_id"] == seed.bot.id and m["channel_id"] == seed.channel_id for m in sent)
    assert all(m["type"] == "default" and m["edited_at"] is None and not m["pinned"] for m in sent)
    ids = [m["id"] for m in sent]
    assert ids == sorted(ids) and ids[0] > seed.imported[-1]
    for message in sent:
        age = datetime.now(timezone.utc) - datetime.fromisoformat(message["created_at"])
        assert timedelta(0) <= age < timedelta(minutes=5)


def test_history_in_every_mode_matches_what_was_imported_and_sent(observed):
    seed, report = observed
    history = report["history"]
    everything = seed.imported + [m["id"] for m in report["sent"]]
    newest_first = sorted(everything, reverse=True)
    after_id, before_id, around_id = seed.imported[40], seed.imported[200], seed.imported[120]

    assert len(history["default"]) > 100
    assert history["default"] == newest_first
    assert history["oldest_first"] == sorted(everything)
    assert history["after"] == [i for i in sorted(everything) if i > after_id]
    assert history["after_30"] == seed.imported[41:71]
    assert history["before_150"] == [i for i in newest_first if i < before_id][:150]
    assert history["before_time"] == [i for i in newest_first if snowflake_time(i) < BEFORE_TIME]
    assert history["before_time"][0] == seed.imported[80]  # 20 days of 4 messages a day, then 00:00 of day 21
    assert history["after_time"] == [i for i in sorted(everything) if snowflake_time(i) > AFTER_TIME]
    assert history["after_time"][0] == seed.imported[201]  # 4 messages a day: 200 is at 00:00 of day 51
    # An even limit gives limit // 2 on each side plus the message itself (discord.py's documented quirk).
    assert history["around_10"] == seed.imported[115:126][::-1]
    assert history["around_10"][5] == around_id


def test_fetch_an_imported_message(observed):
    seed, report = observed
    old = report["old_message"]
    assert (old["id"], old["content"], old["author_id"]) == (seed.imported[10], "imported 10", seed.bot.id)
    assert old["created_at"] == (HISTORY_START + 10 * IMPORTED_SPACING).isoformat()
    assert old["pinned"] is True


def test_edit(observed):
    seed, report = observed
    for view in (report["edited"], report["edited_refetched"]):
        assert (view["id"], view["content"]) == (report["sent"][0]["id"], "live 0, edited")
        assert view["edited_at"] is not None
        assert datetime.fromisoformat(view["edited_at"]) >= datetime.fromisoformat(view["created_at"])


def test_delete_and_bulk_delete(observed):
    seed, report = observed
    assert report["deleted_fetch"] == {"status": 404, "code": 10008}
    bulk = report["bulk_deleted"]
    assert bulk["fetch"] == [{"status": 404, "code": 10008}] * 2
    assert not set(bulk["ids"]) & set(bulk["newest_after"])
    assert bulk["newest_after"] == [report["sent"][2]["id"], report["sent"][0]["id"], seed.imported[-1]]


def test_reactions(observed):
    seed, report = observed
    assert report["reactions"] == [["🔥", 2, True], ["👍", 1, False], [CUSTOM_EMOJI, 1, False]]
    # Reaction.users() asks for users ascending by id and yields each page reversed.
    assert report["reaction_users"] == {
        "🔥": sorted([seed.bot.id, seed.friend.id], reverse=True), "👍": [seed.friend.id],
        CUSTOM_EMOJI: [seed.friend.id],
    }
    assert report["reactions_after_removal"] == [["🔥", 1, False], [CUSTOM_EMOJI, 1, False]]
    assert report["reactions_after_clearing_one"] == [["🔥", 1, False]]
    assert report["reactions_after_clearing_all"] == []


def test_pins(observed):
    seed, report = observed
    target = report["sent"][2]["id"]
    pinned_ids = [message_id for message_id, _ in report["pins"]]
    # Newest pin first; imported pins were pinned at their messages' times.
    assert pinned_ids == [target, seed.pinned[1], seed.pinned[0]]
    assert [at for _, at in report["pins"][1:]] == [snowflake_time(i).isoformat() for i in seed.pinned[::-1]]
    assert datetime.fromisoformat(report["pins"][0][1]) > datetime.now(timezone.utc) - timedelta(minutes=5)
    assert report["pins_after_unpin"] == [seed.pinned[1], seed.pinned[0]]


def test_reply(observed):
    seed, report = observed
    target = report["sent"][2]
    for view in (report["reply"], report["reply_fetched"]):
        assert (view["type"], view["content"], view["reference_message_id"]) == ("reply", "a reply", target["id"])
        assert view["mention_ids"] == [seed.bot.id]  # the replied-to author is pinged by default
    assert (report["reply_resolved"]["id"], report["reply_resolved"]["content"]) == (target["id"], "live 2")
    assert report["newest_at_end"][0] == report["reply"]["id"]
    assert report["last_message_id_at_end"] == report["reply"]["id"]
