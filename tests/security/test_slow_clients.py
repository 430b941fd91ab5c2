"""Slow and silent clients cannot hold a worker's connections (config/worker.py): read deadlines for headers and
bodies, a cap on connections per client address, and idle keep-alive longer than clients keep theirs.

Client addresses other than 127.0.0.1 are other loopback addresses (127.0.0.0/8 is all loopback on Linux), so
that "another client" is one the server tells apart.
"""
from __future__ import annotations

import contextlib
import socket
import time

import gevent
import pytest

from tests.security.seed import seed, sqlite_settings
from tests.support.server import gunicorn_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    with sqlite_settings(tmp_path_factory.mktemp("slow-clients")) as settings:
        yield settings, seed(settings)


def connect(server, source: str = "127.0.0.1", timeout: float = 30) -> socket.socket:
    connection = socket.socket()
    connection.settimeout(timeout)
    connection.bind((source, 0))
    connection.connect((server.host, server.port))
    return connection


def read_answer(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    answer = b""
    while chunk := connection.recv(65536):
        answer += chunk
    return answer


def get_me(token: str, *, close: bool = False) -> bytes:
    return (f"GET /api/v10/users/@me HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bot {token}\r\n"
            + ("Connection: close\r\n" if close else "") + "\r\n").encode()


def read_one_answer(connection: socket.socket) -> bytes:
    """One answer with a Content-Length, leaving the connection open."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += connection.recv(65536)
    head, _, body = answer.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += connection.recv(65536)
    return head + b"\r\n\r\n" + body


def test_a_body_sent_one_byte_every_two_seconds_is_cut_off_with_408(database):
    settings, world = database
    with gunicorn_server({"DATABASE_URL": settings.database_url, "WEB_WORKERS": "1", "RATE_LIMIT_ENABLED": "false",
                          "REQUEST_BODY_TIMEOUT": "3"}) as server:
        connection = connect(server)
        connection.sendall(f"POST /api/v10/channels/{world.channel_ids[0]}/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           f"Authorization: Bot {world.owner.token}\r\nContent-Type: application/json\r\n"
                           f"Content-Length: 40\r\n\r\n".encode())
        started = time.monotonic()
        answer = b""
        connection.settimeout(2)
        for byte in b'{"content": "slow"':
            try:
                connection.sendall(bytes([byte]))
                answer += connection.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if answer:
                break
        connection.settimeout(10)
        answer += read_answer(connection)
        elapsed = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b'"code":0' in answer.replace(b" ", b"")
        # The deadline is 3 s plus what arrived at 16 KiB/s; a byte every 2 s gets no more.
        assert 2.5 < elapsed < 8, elapsed


def test_silent_and_slow_header_connections_are_closed_at_the_header_deadline(database):
    settings, world = database
    with gunicorn_server({"DATABASE_URL": settings.database_url, "WEB_WORKERS": "1", "RATE_LIMIT_ENABLED": "false",
                          "REQUEST_HEADER_TIMEOUT": "2"}) as server:
        silent, trickling = connect(server), connect(server)
        started = time.monotonic()
        trickling.sendall(b"GET /api/v10/users/@me HTTP/1.1\r\n")
        header = gevent.spawn(_trickle, trickling, b"X-Slow: " + b"a" * 20)
        assert read_answer(silent) == b""
        silent_closed = time.monotonic() - started
        answer = read_answer(trickling)
        header.kill()
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert 1.5 < silent_closed < 6, silent_closed
        assert time.monotonic() - started < 6
        # A prompt client on the same worker is served.
        prompt = connect(server)
        prompt.sendall(get_me(world.owner.token, close=True))
        assert read_answer(prompt).startswith(b"HTTP/1.1 200")


def test_an_upgrade_header_on_an_ordinary_request_keeps_the_deadlines(database):
    """Only a WebSocket handshake leaves the read deadlines: a slow body sent with ``Upgrade: foo`` is cut off as
    any other, and so is a keep-alive connection left silent after a request that said ``Upgrade: h2c``."""
    settings, world = database
    with gunicorn_server({"DATABASE_URL": settings.database_url, "WEB_WORKERS": "1", "RATE_LIMIT_ENABLED": "false",
                          "REQUEST_BODY_TIMEOUT": "2", "KEEPALIVE_TIMEOUT": "2"}) as server:
        slow = connect(server)
        slow.sendall(f"POST /api/v10/channels/{world.channel_ids[0]}/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     f"Authorization: Bot {world.owner.token}\r\nContent-Type: application/json\r\n"
                     f"Upgrade: foo\r\nConnection: upgrade\r\nContent-Length: 40\r\n\r\n".encode())
        started = time.monotonic()
        trickle = gevent.spawn(_trickle, slow, b'{"content": "slow upgrade"', 1.0)
        answer = read_answer(slow)
        trickle.kill()
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert time.monotonic() - started < 8

        idle = connect(server)
        idle.sendall(get_me(world.owner.token)[:-2] + b"Upgrade: h2c\r\nConnection: upgrade\r\n\r\n")
        assert read_one_answer(idle).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert read_answer(idle) == b""  # closed by the server at the keep-alive deadline
        assert time.monotonic() - started < 6


def _trickle(connection: socket.socket, data: bytes, interval: float = 0.5) -> None:
    for byte in data:
        try:
            connection.sendall(bytes([byte]))
        except OSError:
            return
        gevent.sleep(interval)


def test_connections_per_address_are_capped_and_others_are_still_served(database):
    settings, world = database
    with gunicorn_server({"DATABASE_URL": settings.database_url, "WEB_WORKERS": "1", "RATE_LIMIT_ENABLED": "false",
                          "MAX_CONNECTIONS_PER_ADDRESS": "5"}) as server:
        held = [connect(server, "127.0.0.2") for _ in range(5)]
        for connection in held:  # each holds its slot: a first request answered, kept alive
            connection.sendall(get_me(world.owner.token))
            assert read_one_answer(connection).startswith(b"HTTP/1.1 200")
        over = connect(server, "127.0.0.2")
        answer = read_answer(over)
        assert answer.startswith(b"HTTP/1.1 429") and b"Retry-After: 1" in answer, answer
        other = connect(server, "127.0.0.3")
        other.sendall(get_me(world.owner.token, close=True))
        assert read_answer(other).startswith(b"HTTP/1.1 200")
        held.pop().close()
        gevent.sleep(0.2)
        again = connect(server, "127.0.0.2")
        again.sendall(get_me(world.owner.token, close=True))
        assert read_answer(again).startswith(b"HTTP/1.1 200")


def test_an_idle_keep_alive_connection_outlives_aiohttps_fifteen_seconds(database):
    settings, world = database
    with gunicorn_server({"DATABASE_URL": settings.database_url, "WEB_WORKERS": "1",
                          "RATE_LIMIT_ENABLED": "false"}) as server:
        connection = connect(server)
        connection.sendall(get_me(world.owner.token))
        first = read_one_answer(connection)
        assert first.startswith(b"HTTP/1.1 200") and b"Connection: keep-alive" in first
        gevent.sleep(16)
        connection.sendall(get_me(world.owner.token))
        assert read_one_answer(connection).startswith(b"HTTP/1.1 200")


SLOW_ADDRESSES = [f"127.0.0.{host}" for host in range(2, 6)]
SLOW_CONNECTIONS = 2000


def test_2000_slow_connections_leave_ordinary_requests_fast(database):
    """Four addresses open 500 connections each and send bodies a byte every two seconds; meanwhile a client at
    127.0.0.1 makes ordinary requests, each on a new connection. The default settings hold: the cap per address
    keeps slots free in both workers, and the read deadlines recycle what the slow clients hold."""
    settings, world = database
    with gunicorn_server({"DATABASE_URL": settings.database_url, "RATE_LIMIT_ENABLED": "false"}) as server:
        stop = False
        refused = held = 0

        def slow_client(source: str) -> None:
            nonlocal refused, held
            try:
                connection = connect(server, source, timeout=60)
                connection.sendall(f"POST /api/v10/channels/{world.channel_ids[0]}/messages HTTP/1.1\r\n"
                                   f"Host: 127.0.0.1\r\nAuthorization: Bot {world.owner.token}\r\n"
                                   f"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n".encode())
            except OSError:
                refused += 1
                return
            held += 1
            try:
                while not stop:
                    connection.sendall(b" ")
                    gevent.sleep(2)
            except OSError:
                pass  # cut off by the server
            finally:
                held -= 1
                connection.close()

        attackers = [gevent.spawn(slow_client, SLOW_ADDRESSES[index % len(SLOW_ADDRESSES)])
                     for index in range(SLOW_CONNECTIONS)]
        gevent.sleep(4)  # every slow connection is open, refused or held
        latencies = []
        try:
            # Within the body deadline (10 s) of the slow connections, and past it as they are cut off.
            measured_until = time.monotonic() + 10
            while time.monotonic() < measured_until:
                started = time.monotonic()
                connection = connect(server, timeout=10)
                connection.sendall(get_me(world.owner.token, close=True))
                answer = read_answer(connection)
                connection.close()
                latencies.append(time.monotonic() - started)
                assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
                gevent.sleep(0.02)
            held_at_end = held
        finally:
            stop = True
            gevent.joinall(attackers, timeout=10)
            gevent.killall(attackers)
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        print(f"\n{len(latencies)} ordinary requests during {SLOW_CONNECTIONS} slow connections "
              f"({held_at_end} still held at the end): p50 {latencies[len(latencies) // 2] * 1000:.1f} ms, "
              f"p99 {p99 * 1000:.1f} ms")
        assert len(latencies) > 100
        assert p99 < 0.1, latencies[-10:]


def test_a_client_expecting_100_continue_gets_it_before_sending_its_body(database):
    """The worker reads small bodies before the app, but not one the client holds back until told to send it."""
    settings, world = database
    with gunicorn_server({"DATABASE_URL": settings.database_url, "WEB_WORKERS": "1",
                          "RATE_LIMIT_ENABLED": "false"}) as server:
        body = b'{"content": "after continue"}'
        connection = connect(server, timeout=10)
        connection.sendall(f"POST /api/v10/channels/{world.channel_ids[0]}/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           f"Authorization: Bot {world.owner.token}\r\nContent-Type: application/json\r\n"
                           f"Expect: 100-continue\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n"
                           .encode())
        assert connection.recv(65536).startswith(b"HTTP/1.1 100 Continue")
        connection.sendall(body)
        answer = read_answer(connection)
        assert answer.startswith(b"HTTP/1.1 200") and b"after continue" in answer, answer[:300]


@pytest.mark.parametrize("content_type, length", [
    ("application/json", 1000),  # read by the worker before the app
    ("multipart/form-data; boundary=b", 300 * 1024),  # streamed to the app, which answers 408
])
def test_a_client_still_sending_when_answered_408_is_read_on_then_closed_cleanly(database, content_type, length):
    """A server that closes with the client's bytes unread makes the kernel reset the connection instead of closing
    it, and a client reading the answer to its end meets the reset. The server reads on for a moment after its
    408: a client still sending then is not reset, and reads the answer and the end of the stream."""
    settings, world = database
    with gunicorn_server({"DATABASE_URL": settings.database_url, "WEB_WORKERS": "1", "RATE_LIMIT_ENABLED": "false",
                          "REQUEST_BODY_TIMEOUT": "1"}) as server:
        connection = connect(server)
        connection.sendall(f"POST /api/v10/channels/{world.channel_ids[0]}/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           f"Authorization: Bot {world.owner.token}\r\nContent-Type: {content_type}\r\n"
                           f"Content-Length: {length}\r\n\r\n".encode())
        connection.settimeout(0.01)
        answered_at = None
        started = time.monotonic()
        while time.monotonic() - started < 10:
            # A byte every 10 ms is far under REQUEST_BODY_MIN_RATE: the body deadline passes at 1 s.
            connection.sendall(b"x")
            if answered_at is None:
                with contextlib.suppress(TimeoutError):
                    if connection.recv(1, socket.MSG_PEEK):
                        answered_at = time.monotonic()
            elif time.monotonic() - answered_at > 0.2:
                break
            else:
                gevent.sleep(0.01)
        assert answered_at is not None, "no answer within 10 s"
        connection.settimeout(10)
        answer = read_answer(connection)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"connection: close" in answer.lower()
