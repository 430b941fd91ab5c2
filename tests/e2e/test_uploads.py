"""Uploads against real gunicorn with a gevent worker: oversized requests are refused with 413 40005 before their
body is read (by Content-Length) or as soon as it passes the limit (chunked), nothing is stored, and a large
upload streams to disk: the worker's memory stays bounded around a 100 MB file."""
from __future__ import annotations

import json
import socket
import time

import pytest

from app import create_app
from tests.support.databases import migrated_database
from tests.support.factories import Factory
from tests.support.http import JsonClient
from tests.support.server import children_of, gunicorn_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

MIB = 1024 * 1024
BOUNDARY = "chatstoreboundary"
#: How much a worker's resident memory may grow around a 100 MB upload: a small fraction of the file.
RSS_GROWTH_LIMIT = 40 * MIB


def multipart_parts(filename: str) -> tuple[bytes, bytes]:
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"payload_json\"\r\n\r\n"
            f"{json.dumps({'content': 'upload'})}\r\n"
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files[0]\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode()
    return head, f"\r\n--{BOUNDARY}--\r\n".encode()


def request_head(server, path: str, token: str, extra: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\nAuthorization: Bot {token}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n{extra}\r\n").encode()


def read_response(sock: socket.socket) -> tuple[int, dict]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
    length = int(headers.get("Content-Length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(head.split()[1]), json.loads(body) if body else {}


def rss(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    with migrated_database("sqlite", tmp_path_factory.mktemp("uploads")) as settings:
        app = create_app(settings)
        try:
            make = Factory(app.extensions["chatstore"])
            bot = make.actor("uploader")
            _, channel_id = make.guild(bot)
        finally:
            app.extensions["chatstore"].close()
        yield settings, bot, channel_id


def test_a_declared_oversized_body_is_refused_before_it_is_sent(seeded):
    settings, bot, channel_id = seeded
    with gunicorn_server({"DATABASE_URL": settings.database_url, "WEB_WORKERS": "1"}) as server:
        with socket.create_connection((server.host, server.port), timeout=20) as sock:
            sock.sendall(request_head(server, f"/api/v10/channels/{channel_id}/messages", bot.token,
                                      f"Content-Length: {100 * MIB}\r\n"))
            started = time.monotonic()
            status, body = read_response(sock)  # not a byte of the body was sent
            assert (status, body["code"]) == (413, 40005)
            assert time.monotonic() - started < 10
        status, history = JsonClient(server.url, bot.token).get(f"/channels/{channel_id}/messages")
        assert (status, history) == (200, [])


def test_a_chunked_body_is_refused_once_past_the_limit(seeded):
    settings, bot, channel_id = seeded
    with gunicorn_server({"DATABASE_URL": settings.database_url, "WEB_WORKERS": "1"}) as server:
        head, tail = multipart_parts("big.bin")
        sent = 0
        with socket.create_connection((server.host, server.port), timeout=30) as sock:
            sock.sendall(request_head(server, f"/api/v10/channels/{channel_id}/messages", bot.token,
                                      "Transfer-Encoding: chunked\r\n"))
            try:
                sock.sendall(f"{len(head):x}\r\n".encode() + head + b"\r\n")
                chunk = b"z" * MIB
                for _ in range(100):
                    sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    sent += len(chunk)
                sock.sendall(f"{len(tail):x}\r\n".encode() + tail + b"\r\n0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered and closed while the body was still coming
            status, body = read_response(sock)
        assert (status, body["code"]) == (413, 40005)
        assert sent < 100 * MIB or status == 413
        status, history = JsonClient(server.url, bot.token).get(f"/channels/{channel_id}/messages")
        assert (status, history) == (200, [])


def test_a_100_mb_upload_streams_with_bounded_memory(seeded, record_property):
    settings, bot, channel_id = seeded
    size = 100 * MIB
    with gunicorn_server({"DATABASE_URL": settings.database_url, "WEB_WORKERS": "1",
                          "MAX_UPLOAD_BYTES": str(size + MIB)}) as server:
        [worker] = children_of(server.process.pid)
        # A first small request, so the worker's imports and connections are in place before measuring.
        assert JsonClient(server.url, bot.token).get(f"/channels/{channel_id}/messages")[0] == 200
        before = rss(worker)
        head, tail = multipart_parts("big.bin")
        peak = before
        with socket.create_connection((server.host, server.port), timeout=60) as sock:
            sock.sendall(request_head(server, f"/api/v10/channels/{channel_id}/messages", bot.token,
                                      f"Content-Length: {len(head) + size + len(tail)}\r\n"))
            sock.sendall(head)
            chunk = b"y" * MIB
            for index in range(size // MIB):
                sock.sendall(chunk)
                if index % 10 == 0:
                    peak = max(peak, rss(worker))
            sock.sendall(tail)
            status, body = read_response(sock)
        after = rss(worker)
        peak = max(peak, after)
        record_property("rss_before_mb", before / MIB)
        record_property("rss_peak_mb", peak / MIB)
        print(f"worker RSS around a 100 MB upload: before {before / MIB:.1f} MiB, peak {peak / MIB:.1f} MiB, "
              f"after {after / MIB:.1f} MiB")
        assert status == 200, body
        assert body["attachments"][0]["size"] == size
        assert peak - before < RSS_GROWTH_LIMIT, (before, peak)
