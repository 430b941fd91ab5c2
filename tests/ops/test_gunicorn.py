"""Operability of the real server: gunicorn with gevent workers, config/gunicorn.py, over loopback HTTP."""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import time

import gevent
import pytest

from app.extensions import Resources
from tests.support.databases import migrated_database
from tests.support.factories import Factory
from tests.support.server import RunningServer, children_of, gunicorn_server, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


@pytest.fixture
def seeded(tmp_path):
    """A migrated SQLite database with a bot that owns a guild; yields (settings, bot, channel_id)."""
    with migrated_database("sqlite", tmp_path) as settings:
        resources = Resources(settings)
        try:
            make = Factory(resources)
            bot = make.actor("ops-bot")
            _guild_id, channel_id = make.guild(bot)
        finally:
            resources.close()
        yield settings, bot, channel_id


def request(server: RunningServer, method: str, path: str, body: dict | None = None,
            headers: dict | None = None) -> tuple[int, bytes]:
    """One request on a new connection, so that successive requests spread over the workers."""
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        payload = None if body is None else json.dumps(body).encode()
        connection.request(method, path, body=payload,
                           headers={**({"Content-Type": "application/json"} if payload else {}), **(headers or {})})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def scrape(server: RunningServer) -> str:
    status, body = request(server, "GET", "/metrics")
    assert status == 200
    return body.decode()


def metric(text: str, name: str, **labels: str) -> float:
    """One sample of an exposition; labels must match exactly in the order prometheus_client writes them."""
    rendered = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    series = f"{name}{{{rendered}}}" if labels else name
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(series + " ")]
    return values[0] if values else 0.0


def memory_pids(text: str) -> set[int]:
    return {int(pid) for pid in re.findall(r'^chatstore_process_resident_memory_bytes\{pid="(\d+)"\}', text, re.M)}


def scrape_until(server: RunningServer, accept, what: str) -> str:
    """Scrape until ``accept(text)`` holds (workers boot and exit asynchronously); the accepted text."""
    def accepted():
        text = scrape(server)
        return text if accept(text) else None

    return wait_for(accepted, 20, what)


# The hub watch is tested in process (tests/ops/test_hub.py): a blocking call that releases the GIL is reported
# with its exact stack there. Over HTTP the only such call was SQLite's lock wait, now cooperative; a CPU-bound
# one holds the GIL, so the monitor thread wakes after it and reports whatever runs next, or nothing.
def test_metrics_add_up_over_workers_and_outlive_a_worker_that_exits(seeded):
    settings, _bot, _channel_id = seeded
    with gunicorn_server({"DATABASE_URL": settings.database_url, "WEB_WORKERS": "2"}) as server:
        workers = wait_for(lambda: len(c := children_of(server.process.pid)) == 2 and c, 20, "two workers")

        def served_by() -> set[int]:
            return {line["pid"] for line in map(json.loads, server.log().splitlines())
                    if line.get("logger") == "chatstore.access" and line["route"] == "/healthz"}

        # The kernel may hand a run of connections to one worker; send rounds at once until both have served.
        sent = 0
        while sent < 600 and served_by() != workers:
            rounds = [gevent.spawn(request, server, "GET", "/healthz") for _ in range(20)]
            gevent.joinall(rounds, raise_error=True)
            assert all(done.value[0] == 200 for done in rounds)
            sent += len(rounds)
        assert served_by() == workers, f"one worker served all {sent} connections; the sum would prove nothing"

        # Both workers report their memory once booted, and every scrape, whichever worker answers it, sums
        # the requests of both.
        text = scrape_until(server, lambda t: memory_pids(t) == workers, f"memory of workers {workers}")
        assert metric(text, "chatstore_http_requests_total", route="/healthz", method="GET", status="200") == sent

        # A worker that exits: its requests stay counted, its live gauge goes.
        leaving = min(workers)
        os.kill(leaving, signal.SIGTERM)
        wait_for(lambda: leaving not in children_of(server.process.pid), 20, "the worker to exit")
        replacements = wait_for(lambda: len(c := children_of(server.process.pid)) == 2 and c, 20,
                                "a replacement worker")
        text = scrape_until(server, lambda t: memory_pids(t) == replacements, f"memory of workers {replacements} only")
        assert metric(text, "chatstore_http_requests_total", route="/healthz", method="GET", status="200") == sent


def test_sigterm_under_write_load_loses_no_acknowledged_write_and_exits_in_time(seeded):
    settings, bot, channel_id = seeded
    environment = {"DATABASE_URL": settings.database_url, "WEB_WORKERS": "2", "GRACEFUL_TIMEOUT": "10",
                   "RATE_LIMIT_ENABLED": "false"}
    acknowledged: list[int] = []
    refused: list[int] = []
    terminated_at: list[float] = []

    def write_until_refused(writer: int, server: RunningServer):
        """Post messages on a keep-alive connection; after SIGTERM, stop at the first failed connection."""
        connection, sent = None, 0
        while True:
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
                connection.request("POST", f"/api/v10/channels/{channel_id}/messages",
                                   body=json.dumps({"content": f"writer {writer} message {sent}"}),
                                   headers={**bot.headers, "Content-Type": "application/json"})
                response = connection.getresponse()
                body = response.read()
                sent += 1
                if 200 <= response.status < 300:
                    acknowledged.append(int(json.loads(body)["id"]))
                else:
                    refused.append(response.status)
                if response.will_close:
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException):
                if connection is not None:
                    connection.close()
                connection = None
                if terminated_at:
                    return
                raise

    with gunicorn_server(environment) as server:
        wait_for(lambda: len(children_of(server.process.pid)) == 2, 20, "two workers")
        writers = [gevent.spawn(write_until_refused, n, server) for n in range(8)]
        wait_for(lambda: len(acknowledged) >= 20, 30, "writes to flow")
        written_before_sigterm = len(acknowledged)
        terminated_at.append(time.monotonic())
        os.kill(server.process.pid, signal.SIGTERM)
        exit_status = server.process.wait(timeout=20)
        stopped_after = time.monotonic() - terminated_at[0]
        finished = gevent.joinall(writers, timeout=15, raise_error=True)
        log = server.log()

    assert exit_status == 0, log[-3000:]
    assert "graceful timeout" not in log, "a worker was killed with requests still in flight"
    assert stopped_after < 12, f"graceful stop took {stopped_after:.1f}s"
    assert len(finished) == len(writers), "a client hung"
    assert refused == []
    reader = Resources(settings)
    try:
        stored = reader.message_store.get_messages(channel_id, acknowledged)
    finally:
        reader.close()
    assert len(acknowledged) == len(set(acknowledged)) > written_before_sigterm
    assert set(stored) == set(acknowledged)
    assert log.count("closed its database pool, message store and snowflake slot") == 2
