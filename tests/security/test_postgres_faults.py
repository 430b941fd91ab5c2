"""PostgreSQL goes away under load and comes back: real gunicorn (two gevent workers) on a private cluster.

While the database is down, requests fail fast with 503, Retry-After and a JSON body; no worker hangs (gunicorn
kills none for a timeout); when it is back the service recovers by itself within seconds; and every write
that was acknowledged with a 2xx is there afterwards. (ScyllaDB faults are tested in tests/scylla.)
"""
from __future__ import annotations

import contextlib
import http.client
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count

import gevent
import pytest
from sqlalchemy import create_engine

from app.cli.db import upgrade
from config import Settings
from tests.security.seed import seed
from tests.security.servers import postgres_server
from tests.support.server import gunicorn_server

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
LOAD_GREENLETS = 6
#: Longest a request may take while the database is down: the engine's connect timeout is 5 s, and a
#: refused connection should not even wait for that.
FAIL_FAST_SECONDS = 6.0
RECOVERY_DEADLINE_SECONDS = 15.0


@dataclass(frozen=True)
class Outcome:
    started: float
    seconds: float
    status: int  # 0: no HTTP answer at all
    retry_after: str | None
    body: dict | None
    content: str


def post_message(server, token: str, channel_id: int, content: str) -> Outcome:
    started = time.monotonic()
    connection = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        connection.request("POST", f"/api/v10/channels/{channel_id}/messages", json.dumps({"content": content}),
                           {"Authorization": f"Bot {token}", "Content-Type": "application/json"})
        response = connection.getresponse()
        raw = response.read()
        body = json.loads(raw) if response.getheader("Content-Type") == "application/json" else None
        return Outcome(started, time.monotonic() - started, response.status, response.getheader("Retry-After"),
                       body, content)
    except OSError:
        return Outcome(started, time.monotonic() - started, 0, None, None, content)
    finally:
        connection.close()


def history(server, token: str, channel_id: int) -> list[dict]:
    """Every message of the channel, newest first, paging with ``before`` as discord.py does."""
    messages, before = [], None
    while True:
        connection = http.client.HTTPConnection(server.host, server.port, timeout=30)
        query = "limit=100" + (f"&before={before}" if before else "")
        connection.request("GET", f"/api/v10/channels/{channel_id}/messages?{query}",
                           headers={"Authorization": f"Bot {token}"})
        response = connection.getresponse()
        assert response.status == 200
        page = json.loads(response.read())
        connection.close()
        messages += page
        if len(page) < 100:
            return messages
        before = page[-1]["id"]


def migrated_world(database) -> tuple[str, int]:
    """Migrate the private cluster's database and seed it: the owner's token and a channel."""
    engine = create_engine(database.url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    world = seed(Settings(database_url=database.url, rate_limit_enabled=False))
    return world.owner.token, world.channel_ids[0]


@contextlib.contextmanager
def posting_load(server, token: str, channel_id: int, prefix: str, pause: float) -> Iterator[list[Outcome]]:
    """LOAD_GREENLETS posters, each pausing ``pause`` s between messages, until the block ends; yields the
    outcomes as they arrive."""
    outcomes: list[Outcome] = []
    numbers = count()
    running = True

    def load():
        while running:
            outcomes.append(post_message(server, token, channel_id, f"{prefix}{next(numbers)}"))
            gevent.sleep(pause)

    greenlets = [gevent.spawn(load) for _ in range(LOAD_GREENLETS)]
    try:
        yield outcomes
    finally:
        running = False
        gevent.joinall(greenlets, timeout=40)


def wait_until(condition, seconds: float) -> None:
    """Poll ``condition`` every 0.1 s for at most ``seconds``; the assertions after it say what was missed."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        gevent.sleep(0.1)


def test_database_restart_under_load_fails_fast_recovers_and_loses_no_acknowledged_write():
    with postgres_server() as database:
        token, channel_id = migrated_world(database)
        environment = {"DATABASE_URL": database.url, "WEB_WORKERS": "2", "RATE_LIMIT_ENABLED": "false",
                       "DB_POOL_TIMEOUT": "2"}
        with gunicorn_server(environment) as server:
            with posting_load(server, token, channel_id, "m", 0.01) as outcomes:
                wait_until(lambda: sum(o.status == 200 for o in outcomes) >= 30, 20)
                stopping_at = time.monotonic()
                database.stop()
                stopped_at = time.monotonic()
                gevent.sleep(3)
                starting_at = time.monotonic()
                database.start()
                restarted_at = time.monotonic()
                wait_until(lambda: any(o.status == 200 and o.started > restarted_at for o in outcomes),
                           RECOVERY_DEADLINE_SECONDS)
                gevent.sleep(2)  # a little steady load after recovery

            summary = "\n".join(f"{o.started - stopped_at:+.2f}s {o.seconds:.2f}s {o.status}" for o in outcomes)
            before_stop = [o for o in outcomes if o.started + o.seconds < stopping_at]
            while_down = [o for o in outcomes if stopped_at < o.started and o.started + o.seconds < starting_at]
            after = [o for o in outcomes if o.started > restarted_at]
            assert before_stop and all(o.status == 200 for o in before_stop), summary
            # Down: a fast, well-formed 503 for every request; never a 500, never a hang.
            assert while_down, "no request was made while the database was down"
            assert {o.status for o in while_down} == {503}, summary
            assert all(o.retry_after and int(o.retry_after) >= 1 for o in while_down)
            assert all(o.body and o.body["code"] == 0 and o.body["message"] for o in while_down)
            assert max(o.seconds for o in while_down) < FAIL_FAST_SECONDS
            assert {o.status for o in outcomes} <= {200, 503}, summary
            # Back: the service recovers by itself, within seconds of the database.
            recovered = [o for o in after if o.status == 200]
            assert recovered, "no request succeeded after the database came back"
            recovery_seconds = min(o.started + o.seconds for o in recovered) - restarted_at
            assert recovery_seconds < RECOVERY_DEADLINE_SECONDS
            assert after[-LOAD_GREENLETS:] and all(o.status == 200 for o in after[-LOAD_GREENLETS:])
            assert "WORKER TIMEOUT" not in server.log()
            # Every acknowledged write is stored, exactly once.
            acknowledged = [o.content for o in outcomes if o.status == 200]
            stored = [m["content"] for m in history(server, token, channel_id)]
            assert len(stored) == len(set(stored))
            assert set(acknowledged) <= set(stored)
            print(f"\npostgres fault: {len(outcomes)} requests, {len(acknowledged)} acknowledged, "
                  f"{len(while_down)} answered 503 while down (slowest {max(o.seconds for o in while_down):.3f}s), "
                  f"recovered {recovery_seconds:.2f}s after restart, {len(stored)} stored")


#: The service's bound on one answer of PostgreSQL in this test (DB_RESPONSE_TIMEOUT), and on waiting for a pooled
#: connection (DB_POOL_TIMEOUT). A request that meets a frozen database answers within the pool wait and two
#: answers: the ping of a pooled connection, then the connection opened in its place.
RESPONSE_TIMEOUT = 3.0
POOL_TIMEOUT = 2.0
FROZEN_SECONDS = 20.0


def test_a_frozen_database_is_answered_503_within_the_timeouts_and_recovered_from():
    """PostgreSQL stopped with SIGSTOP keeps its connections open and answers nothing: no error arrives, so only
    the service's own bound on the wait can end a request."""
    with postgres_server() as database:
        token, channel_id = migrated_world(database)
        environment = {"DATABASE_URL": database.url, "WEB_WORKERS": "2", "RATE_LIMIT_ENABLED": "false",
                       "DB_POOL_TIMEOUT": str(POOL_TIMEOUT), "DB_RESPONSE_TIMEOUT": str(RESPONSE_TIMEOUT),
                       "DB_STATEMENT_TIMEOUT_MS": "2000"}
        with gunicorn_server(environment) as server:
            with posting_load(server, token, channel_id, "f", 0.05) as outcomes:
                wait_until(lambda: sum(o.status == 200 for o in outcomes) >= 20, 20)
                database.freeze()
                frozen_at = time.monotonic()
                try:
                    gevent.sleep(FROZEN_SECONDS)
                finally:
                    database.thaw()
                thawed_at = time.monotonic()
                wait_until(lambda: any(o.status == 200 and o.started > thawed_at for o in outcomes),
                           RECOVERY_DEADLINE_SECONDS)
                gevent.sleep(2)

            summary = "\n".join(f"{o.started - frozen_at:+.2f}s {o.seconds:.2f}s {o.status}" for o in outcomes)
            # Requests that began while the database was frozen and ended before it was thawed.
            while_frozen = [o for o in outcomes if frozen_at < o.started and o.started + o.seconds < thawed_at]
            assert len(while_frozen) >= LOAD_GREENLETS, summary
            assert {o.status for o in while_frozen} == {503}, summary
            assert all(o.retry_after and int(o.retry_after) >= 1 for o in while_frozen)
            assert all(o.body and o.body["code"] == 0 for o in while_frozen)
            # Every request, even one in flight at the freeze, ends within the bounds (plus scheduling slack).
            bound = POOL_TIMEOUT + 2 * RESPONSE_TIMEOUT + 2.0
            assert max(o.seconds for o in outcomes) < bound, summary
            assert {o.status for o in outcomes} <= {200, 503}, summary
            recovered = [o for o in outcomes if o.started > thawed_at and o.status == 200]
            assert recovered, summary
            assert "WORKER TIMEOUT" not in server.log()
            acknowledged = [o.content for o in outcomes if o.status == 200]
            stored = [m["content"] for m in history(server, token, channel_id)]
            assert set(acknowledged) <= set(stored)
            print(f"\nfrozen postgres: {len(outcomes)} requests, {len(while_frozen)} answered 503 while frozen "
                  f"(slowest request {max(o.seconds for o in outcomes):.2f}s), first 200 "
                  f"{min(o.started + o.seconds for o in recovered) - thawed_at:.2f}s after the thaw")
