"""What the real server says about its connections when it stops, and what it exposes besides its port."""
from __future__ import annotations

import json
import os
import signal
import socket

import pytest

from tests.ops.test_gunicorn import seeded  # noqa: F401  (a fixture)
from tests.support.server import gunicorn_server, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


def refuses_connections(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def read_response(connection: socket.socket) -> tuple[int, dict[str, str], bytes]:
    stream = connection.makefile("rb")
    status = int(stream.readline().split()[1])
    headers = {}
    while (line := stream.readline().decode("latin-1").strip()):
        name, _, value = line.partition(":")
        headers[name.lower()] = value.strip()
    return status, headers, stream.read(int(headers["content-length"]))


def test_a_request_in_flight_at_sigterm_is_answered_with_connection_close(seeded):  # noqa: F811
    settings, bot, channel_id = seeded
    environment = {"DATABASE_URL": settings.database_url, "WEB_WORKERS": "1", "GRACEFUL_TIMEOUT": "10",
                   "RATE_LIMIT_ENABLED": "false"}
    body = json.dumps({"content": "sent across a SIGTERM"}).encode()
    with gunicorn_server(environment) as server:
        connection = socket.create_connection((server.host, server.port), timeout=15)
        try:
            # A keep-alive request whose body is half sent: it is in flight in the worker.
            connection.sendall(b"\r\n".join([
                f"POST /api/v10/channels/{channel_id}/messages HTTP/1.1".encode(), b"Host: 127.0.0.1",
                f"Authorization: Bot {bot.token}".encode(), b"Content-Type: application/json",
                f"Content-Length: {len(body)}".encode(), b"", body[:10]]))
            os.kill(server.process.pid, signal.SIGTERM)
            # The worker closes its listening socket once it has begun stopping; only then is a connection
            # refused (the master's copy closes first).
            wait_for(lambda: refuses_connections(server.host, server.port), 20, "the worker to begin stopping")
            connection.sendall(body[10:])
            status, headers, answer = read_response(connection)
        finally:
            connection.close()
        assert server.process.wait(timeout=20) == 0
    assert status == 200, answer
    assert json.loads(answer)["content"] == "sent across a SIGTERM"
    assert headers["connection"] == "close"


def test_an_idle_keep_alive_connection_does_not_hold_a_stopping_worker(seeded):  # noqa: F811
    """Idle keep-alive lasts longer than the graceful timeout: at SIGTERM the worker ends idle connections at
    once, so it exits promptly and through its exit hook (which hands the relay over and frees its id slot)."""
    settings, bot, _ = seeded
    environment = {"DATABASE_URL": settings.database_url, "WEB_WORKERS": "1", "GRACEFUL_TIMEOUT": "20",
                   "KEEPALIVE_TIMEOUT": "75", "RATE_LIMIT_ENABLED": "false"}
    with gunicorn_server(environment) as server:
        connection = socket.create_connection((server.host, server.port), timeout=30)
        try:
            connection.sendall(f"GET /api/v10/users/@me HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               f"Authorization: Bot {bot.token}\r\n\r\n".encode())
            status, _, _ = read_response(connection)
            assert status == 200
            os.kill(server.process.pid, signal.SIGTERM)
            assert server.process.wait(timeout=15) == 0
            assert connection.recv(1) == b""
        finally:
            connection.close()
        assert "closed its database pool" in server.log()


def test_no_control_socket_is_bound_where_another_instance_would_find_it(seeded, tmp_path):  # noqa: F811
    """gunicorn (25.1+) binds a control socket at $XDG_RUNTIME_DIR/gunicorn.ctl or ~/.gunicorn/gunicorn.ctl by
    default: one path for every instance of a user, so two services (or the tests and a running service)
    would reach each other's master. It is disabled: signals to the master's PID do the same, for that one
    instance only."""
    settings, _bot, _channel_id = seeded
    runtime, home = tmp_path / "runtime", tmp_path / "home"
    runtime.mkdir(mode=0o700)
    home.mkdir()
    environment = {"DATABASE_URL": settings.database_url, "WEB_WORKERS": "1", "XDG_RUNTIME_DIR": str(runtime),
                   "HOME": str(home)}
    with gunicorn_server(environment) as first, gunicorn_server(environment) as second:
        assert first.process.poll() is None and second.process.poll() is None
        assert list(runtime.iterdir()) == [] and list(home.rglob("*")) == []
        log = first.log().lower()
    assert "control" not in log, log
