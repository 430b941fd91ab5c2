"""Unmodified discord.py's gateway client against real gunicorn with two gevent workers, on the SQL bus and on Redis.

Bots run tests/gateway/discord_bot_scenario.py in plain Python processes (only ``Route.BASE`` changed; the
gateway URL comes from /gateway/bot) and report what they observed as JSON lines; a second user writes over REST,
each request on a new connection, so writes go through both workers while a bot's session sits on one.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import gevent
import pytest
from sqlalchemy import update

from app.auth.permissions import Permission
from app.extensions import Resources
from app.gateway.protocol import PRIVILEGED_INTENTS
from config import PROJECT_ROOT
from models import User
from tests.support.databases import migrated_database
from tests.support.factories import Actor, Factory
from tests.support.gateway import CuttableProxy
from tests.support.http import JsonClient
from tests.support.redis import REDIS_URL, delete_prefixed, require_redis, unique_prefix
from tests.support.server import RunningServer, children_of, free_port, gunicorn_server, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SCENARIO = Path(__file__).with_name("discord_bot_scenario.py")
EXAMPLE = PROJECT_ROOT / "docs" / "examples" / "gateway_bot.py"
#: A plain interpreter, not this process's gevent-patched one.
PYTHON = str(PROJECT_ROOT / ".venv" / "bin" / "python")
WAIT = 30


@dataclass
class World:
    server: RunningServer
    proxy: CuttableProxy
    friend: Actor
    bot: Actor
    plain: Actor
    guild_id: int
    general: int
    hidden: int

    def rest(self, actor: Actor | None = None) -> JsonClient:
        return JsonClient(self.server.url, (actor or self.friend).token)

    def say(self, channel_id: int, content: str) -> int:
        status, body = self.rest().post(f"/channels/{channel_id}/messages", {"content": content})
        assert status == 200, body
        return int(body["id"])


class Bot:
    """A discord.py process and the lines it printed."""

    def __init__(self, world: World, actor: Actor, mode: str, script: Path = SCENARIO):
        self.process = subprocess.Popen([PYTHON, str(script), world.server.url, actor.token, mode],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        env={**os.environ, "PYTHONPATH": ""}, text=True)
        self.seen: list[dict] = []

    def next(self, kind: str, timeout: float = WAIT, **match) -> dict:
        """The next observation of ``kind`` (whose fields include ``match``), reading lines as they come."""
        try:
            with gevent.Timeout(timeout):
                return self._read_until(kind, match)
        except gevent.Timeout:
            self.process.kill()
            raise AssertionError(f"no {kind} {match} in {timeout}s; saw {self.seen}; the bot's log ends with "
                                 f"{self.process.stderr.read()[-3000:]}") from None

    def observed(self, kind: str, **match) -> dict:
        """An observation already read, or the next one."""
        for observed in self.seen:
            if observed["event"] == kind and all(observed.get(k) == v for k, v in match.items()):
                return observed
        return self.next(kind, **match)

    def _read_until(self, kind: str, match: dict) -> dict:
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError(f"the bot exited: {self.process.stderr.read()[-3000:]}")
            observed = json.loads(line)
            self.seen.append(observed)
            if observed["event"] == kind and all(observed.get(k) == v for k, v in match.items()):
                return observed

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write("stop\n")
                self.process.stdin.flush()
                self.process.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module", params=["sql", "redis"])
def world(request, tmp_path_factory):
    events = {"EVENT_BUS": request.param}
    if request.param == "redis":
        require_redis()
        events.update(REDIS_URL=REDIS_URL, EVENT_REDIS_PREFIX=unique_prefix())
    with migrated_database("sqlite", tmp_path_factory.mktemp("discord-gateway")) as base:
        resources = Resources(base)
        try:
            make = Factory(resources)
            friend, bot, plain = make.actor("dpy-friend"), make.actor("dpy-bot"), make.actor("dpy-plain")
            guild_id, general = make.guild(friend)
            hidden = make.channel(guild_id, "hidden")
            make.member(guild_id, bot)
            make.member(guild_id, plain)
            make.overwrite(hidden, plain.id, 1, deny=int(Permission.VIEW_CHANNEL))
            with resources.engine.begin() as connection:
                connection.execute(update(User).where(User.id == bot.id).values(privileged_intents=PRIVILEGED_INTENTS))
            # Bots reach the gateway through a proxy that a test can cut (PUBLIC_GATEWAY_URL names it); REST goes
            # to the server directly.
            port, proxy_port = free_port(), free_port()
            proxy = CuttableProxy(proxy_port, port)
            environment = {"DATABASE_URL": base.database_url, "WEB_WORKERS": "2", "RATE_LIMIT_ENABLED": "false",
                           "BIND": f"127.0.0.1:{port}", "PUBLIC_GATEWAY_URL": f"ws://127.0.0.1:{proxy_port}/gateway",
                           "GATEWAY_HEARTBEAT_INTERVAL_MS": "5000", "GATEWAY_MAX_CONCURRENCY": "100", **events}
            try:
                with gunicorn_server(environment) as server:
                    yield World(server, proxy, friend, bot, plain, guild_id, general, hidden)
            finally:
                proxy.stop()
        finally:
            resources.close()
            if request.param == "redis":
                delete_prefixed(REDIS_URL, events["EVENT_REDIS_PREFIX"])


@pytest.fixture
def bot(world):
    running = Bot(world, world.bot, "content")
    yield running
    running.stop()


def test_on_ready_then_messages_edits_reactions_pins_and_deletes_fire(world, bot):
    try:
        ready = bot.next("ready")
    except AssertionError:
        print(world.server.log()[-5000:])
        raise
    assert ready["user"] == world.bot.id and ready["guilds"] == [world.guild_id]
    assert {world.general, world.hidden} <= set(ready["channels"])
    # With the members intent discord.py chunks the guild (op 8) before on_ready.
    assert {world.friend.id, world.bot.id, world.plain.id} <= set(ready["members"])
    rest = world.rest()
    message_id = world.say(world.general, "hello from REST")
    seen = bot.next("message", id=message_id)
    assert seen == {"event": "message", "id": message_id, "content": "hello from REST", "author": world.friend.id,
                    "author_is_member": True, "channel": world.general, "guild": world.guild_id}
    path = f"/channels/{world.general}/messages/{message_id}"
    assert rest.request("PATCH", path, {"content": "edited"})[0] == 200
    assert bot.next("edit", id=message_id)["content"] == "edited"
    assert rest.request("PUT", f"{path}/reactions/%F0%9F%91%8D/@me")[0] == 204
    assert bot.next("reaction", id=message_id)["emoji"] == "👍"
    assert rest.request("PUT", f"/channels/{world.general}/pins/{message_id}")[0] == 204
    assert bot.next("pins", channel=world.general)["last_pin"] is True
    assert rest.delete(path)[0] == 204
    bot.next("delete", id=message_id)


def test_without_message_content_only_mentions_carry_content_and_hidden_channels_send_nothing(world):
    plain = Bot(world, world.plain, "plain")
    try:
        ready = plain.next("ready")
        assert world.hidden not in ready["channels"]
        world.say(world.hidden, "not for plain")
        quiet = world.say(world.general, "no content for plain")
        assert plain.next("message")["id"] == quiet  # the hidden channel's message never came
        assert plain.seen[-1]["content"] == ""
        mention = world.say(world.general, f"<@{world.plain.id}> look")
        assert plain.next("message", id=mention)["content"] == f"<@{world.plain.id}> look"
    finally:
        plain.stop()


def test_a_connection_dropped_mid_stream_is_resumed_with_nothing_lost_or_repeated(world, bot):
    bot.next("ready")
    sent = [world.say(world.general, "before the cut")]
    bot.next("message", id=sent[0])
    assert world.proxy.cut() == 1
    sent += [world.say(world.general, f"while cut {n}") for n in range(3)]
    bot.next("resumed")
    sent.append(world.say(world.general, "after the resume"))
    for message_id in sent[1:]:
        bot.observed("message", id=message_id)
    messages = [seen["id"] for seen in bot.seen if seen["event"] == "message"]
    assert messages == sent
    assert sum(seen["event"] == "ready" for seen in bot.seen) == 1


def test_sigterm_of_the_workers_makes_discord_py_resume_with_nothing_lost_or_repeated(world, bot):
    bot.next("ready")
    sent = [world.say(world.general, "before")]
    bot.next("message", id=sent[0])
    # Every worker that served when the bot connected is stopped in turn, the bot's among them; the master
    # starts new ones. The bot resumes (no second READY) and receives every message once.
    for worker in sorted(children_of(world.server.process.pid)):
        os.kill(worker, signal.SIGTERM)
        wait_for(lambda w=worker: w not in children_of(world.server.process.pid), 30, "the worker to stop")
        wait_for(lambda: len(children_of(world.server.process.pid)) == 2, 30, "a replacement worker")
        sent.append(world.say(world.general, f"after stopping {worker}"))
    bot.observed("resumed")
    for message_id in sent[1:]:
        bot.observed("message", id=message_id)
    messages = [seen["id"] for seen in bot.seen if seen["event"] == "message"]
    assert sorted(messages) == sorted(set(messages)) and set(sent) <= set(messages)
    assert sum(seen["event"] == "ready" for seen in bot.seen) == 1


def test_the_readme_shows_the_example_verbatim():
    assert "```python\n" + EXAMPLE.read_text() + "```" in (PROJECT_ROOT / "README.md").read_text()


def test_the_readme_example_runs_and_answers_ping(world):
    example = subprocess.Popen([PYTHON, str(EXAMPLE)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": "", "CHATSTORE_URL": world.server.url,
                                    "CHATSTORE_TOKEN": world.bot.token})
    try:
        with gevent.Timeout(WAIT, AssertionError("the example never got ready")):
            assert example.stdout.readline().startswith("ready as dpy-bot")
        world.say(world.general, "!ping")

        def answered():
            status, page = world.rest().get(f"/channels/{world.general}/messages?limit=5")
            return status == 200 and any(m["content"] == "pong" and m["author"]["id"] == str(world.bot.id)
                                         for m in page)
        wait_for(answered, WAIT, "the example's pong")
    finally:
        example.send_signal(signal.SIGINT)
        try:
            example.wait(10)
        except subprocess.TimeoutExpired:
            example.kill()
            example.wait()
