"""Rate limits on real gunicorn with two gevent workers counting in one (private) Redis, and discord.py
waiting out a 429 against it."""
from __future__ import annotations

import functools
import http.client
import json
import subprocess
import sys
import time
from pathlib import Path

import gevent.pool
import pytest
import redis

from tests.security.seed import seed, sqlite_settings
from tests.security.servers import redis_server
from tests.support.server import gunicorn_server, wait_for

pytestmark = pytest.mark.e2e
DISCORD_CLIENT = Path(__file__).with_name("discord_client.py")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with sqlite_settings(tmp_path_factory.mktemp("served")) as settings, redis_server() as redis_url:
        world = seed(settings, channels=3)
        environment = {
            "DATABASE_URL": settings.database_url, "WEB_WORKERS": "2", "REDIS_URL": redis_url,
            "RATE_LIMIT_ENABLED": "1", "RATE_LIMIT_MESSAGE_CREATE": "2/3",
        }
        with gunicorn_server(environment) as server:
            yield server, world, redis_url


def post_message(server, token: str, channel_id: int, content: str) -> tuple[int, dict, dict]:
    """One request on a connection of its own, so that the two workers share the requests."""
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        connection.request("POST", f"/api/v10/channels/{channel_id}/messages", json.dumps({"content": content}),
                           {"Authorization": f"Bot {token}", "Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read())
    finally:
        connection.close()


def test_workers_count_in_the_same_redis_bucket(served):
    server, world, redis_url = served
    channel_id = world.channel_ids[0]
    answers = gevent.pool.Pool(12).map(
        lambda i: post_message(server, world.owner.token, channel_id, f"burst {i}"), range(12))

    statuses = sorted(status for status, _headers, _body in answers)
    assert statuses == [200] * 2 + [429] * 10, statuses
    for status, headers, body in answers:
        assert headers["X-RateLimit-Limit"] == "2"
        if status == 429:
            assert body["global"] is False and 0 < body["retry_after"] <= 3.0
            assert headers["Via"] and headers["X-RateLimit-Scope"] == "user"
    client = redis.from_url(redis_url)
    counters = [key for key in client.scan_iter(match=f"*messages.create/{channel_id}/*")]
    assert len(counters) == 1 and int(client.get(counters[0])) == 12
    assert 0 < client.pttl(counters[0]) <= 3000


def test_discord_py_waits_out_a_429_and_retries(served):
    server, world, _redis_url = served
    channel_id = world.channel_ids[1]
    # Spend the bucket behind discord.py's back, so its first send meets a 429 it did not foresee.
    for i in range(2):
        assert post_message(server, world.owner.token, channel_id, f"spent {i}")[0] == 200

    finished = subprocess.run(
        [sys.executable, str(DISCORD_CLIENT), server.url, world.owner.token, str(channel_id), "3"],
        capture_output=True, text=True, timeout=60,
    )
    assert finished.returncode == 0, finished.stderr
    report = json.loads(finished.stdout)
    assert len(report["sent"]) == 3
    assert any("responded with 429. Retrying in" in warning for warning in report["warnings"]), report
    # 5 messages at 2 per 3 s need at least two further windows: discord.py waited rather than failing.
    assert report["seconds"] > 2.0

    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    connection.request("GET", f"/api/v10/channels/{channel_id}/messages",
                       headers={"Authorization": f"Bot {world.owner.token}"})
    stored = json.loads(connection.getresponse().read())
    connection.close()
    assert [m["content"] for m in stored] == ["discord.py 2", "discord.py 1", "discord.py 0", "spent 1", "spent 0"]


def test_without_redis_the_workers_of_a_host_count_together(tmp_path):
    """Two workers, no Redis: one client's requests, sent one after the other in turn over a connection held by
    each worker, spend one bucket, and X-RateLimit-Remaining only goes down."""
    with sqlite_settings(tmp_path) as settings:
        world = seed(settings)
        environment = {"DATABASE_URL": settings.database_url, "WEB_WORKERS": "2", "RATE_LIMIT_ENABLED": "1",
                       "RATE_LIMIT_MESSAGE_CREATE": "6/30", "RATE_LIMIT_STORAGE_URL": ""}
        with gunicorn_server(environment) as server:
            by_worker = _connections_of_both_workers(server)
            turns = list(by_worker.values())
            answers = []
            for index in range(10):
                connection = turns[index % 2]
                connection.request("POST", f"/api/v10/channels/{world.channel_ids[0]}/messages",
                                   json.dumps({"content": f"shared {index}"}),
                                   {"Authorization": f"Bot {world.owner.token}", "Content-Type": "application/json"})
                response = connection.getresponse()
                answers.append((response.status, dict(response.getheaders()), response.read()))
            for connection in turns:
                connection.close()
    statuses = [status for status, _headers, _body in answers]
    remaining = [int(headers["X-RateLimit-Remaining"]) for _status, headers, _body in answers]
    assert statuses == [200] * 6 + [429] * 4
    assert remaining == [5, 4, 3, 2, 1, 0, 0, 0, 0, 0]


def _connections_of_both_workers(server) -> dict[int, http.client.HTTPConnection]:
    """One keep-alive connection held by each of the two workers. Which worker accepts a connection is the
    workers' race, and the server answers once one worker is up, while the other may still be loading the app:
    connections are opened eight at once, in rounds, until the access log shows a request of each worker."""
    by_worker: dict[int, http.client.HTTPConnection] = {}
    deadline = time.monotonic() + 30
    burst = 0
    while time.monotonic() < deadline:
        burst += 1
        connections = [http.client.HTTPConnection(server.host, server.port, timeout=10) for _ in range(8)]
        gevent.pool.Pool(8).map(lambda connection: connection.connect(), connections)
        for index, connection in enumerate(connections):
            request_id = f"which-worker-{burst}-{index}"
            connection.request("GET", "/api/v10/gateway", headers={"X-Request-ID": request_id})
            connection.getresponse().read()
            pid = wait_for(functools.partial(_pid_of_request, server, request_id), 10,
                           f"the access line of {request_id}")
            if pid in by_worker:
                connection.close()
            else:
                by_worker[pid] = connection
        if len(by_worker) == 2:
            return by_worker
        gevent.sleep(0.2)
    raise AssertionError(f"for 30 s, one worker accepted every connection ({burst} rounds of 8)")


def _pid_of_request(server, request_id: str) -> int | None:
    for line in server.log().splitlines():
        if '"chatstore.access"' in line and request_id in line:
            return json.loads(line)["pid"]
    return None
