"""Hostile bytes at the HTTP level, sent raw to real gunicorn: every one gets a 4xx and the server keeps serving.

Request lines and headers that gunicorn itself refuses (bytes that are not ASCII in the request line, a
request line over 4094 bytes, a header over 8190 bytes, a malformed Content-Length) are answered by gunicorn
before the app sees them; config/gunicorn.py makes that answer JSON in the API's error form too. What reaches
the app is answered in Discord's JSON form.
"""
from __future__ import annotations

import json
import socket

import pytest

from tests.security.seed import seed, sqlite_settings
from tests.support.server import gunicorn_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with sqlite_settings(tmp_path_factory.mktemp("hostile-http")) as settings:
        world = seed(settings)
        with gunicorn_server({"DATABASE_URL": settings.database_url, "WEB_WORKERS": "1",
                              "RATE_LIMIT_ENABLED": "false"}) as server:
            yield server, world


def exchange(server, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read the whole answer (the request asks the server to close)."""
    with socket.create_connection((server.host, server.port), timeout=15) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


def request(line: bytes, *headers: bytes, body: bytes = b"") -> bytes:
    return b"\r\n".join([line, b"Host: 127.0.0.1", *headers, b"Connection: close", b"", body])


def still_serving(server, token: str) -> None:
    status, _headers, body = exchange(server, request(b"GET /api/v10/users/@me HTTP/1.1",
                                                      f"Authorization: Bot {token}".encode()))
    assert status == 200 and json.loads(body)["id"]


REFUSED_BY_GUNICORN = [
    pytest.param(request(b"GET /api/v10/channels/\xff\xfe/messages HTTP/1.1"), id="non-ascii-request-line"),
    pytest.param(request(b"GET /api/v10/channels/1/messages?before=" + b"9" * 8000 + b" HTTP/1.1"),
                 id="request-line-over-limit"),
    pytest.param(request(b"GET /api/v10/users/@me HTTP/1.1", b"X-Padding: " + b"a" * 10_000), id="header-over-limit"),
    pytest.param(request(b"POST /api/v10/guilds HTTP/1.1", b"Content-Length: abc", body=b"{}"),
                 id="malformed-content-length"),
    pytest.param(request(b"GET /api/v10/users/@me HTTP/1.1", b"Authorization: Bot \xff\x00"),
                 id="control-bytes-in-a-header"),
]


@pytest.mark.parametrize("raw", REFUSED_BY_GUNICORN)
def test_malformed_http_is_a_json_4xx_from_gunicorn(served, raw):
    server, world = served
    status, headers, body = exchange(server, raw)
    assert 400 <= status < 500
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"message": json.loads(body)["message"], "code": 0}
    assert json.loads(body)["message"].startswith(f"{status}: ")
    still_serving(server, world.owner.token)


def test_what_reaches_the_app_is_answered_in_discord_form(served):
    server, world = served
    channel_id, token = world.channel_ids[0], world.owner.token
    auth = f"Authorization: Bot {token}".encode()
    cases = [
        # Percent-encoded bytes that are not UTF-8, in the path and in the query.
        (request(f"GET /api/v10/channels/{channel_id}/messages/%ff%fe HTTP/1.1".encode(), auth), 400, 50035),
        (request(f"GET /api/v10/channels/{channel_id}/messages?limit=%ff HTTP/1.1".encode(), auth), 400, 50035),
        # A Content-Length over the limit is refused before the body is read.
        (request(f"POST /api/v10/channels/{channel_id}/messages HTTP/1.1".encode(), auth,
                 b"Content-Type: application/json", b"Content-Length: 99999999999"), 413, 40005),
        (request(f"POST /api/v10/channels/{channel_id}/messages HTTP/1.1".encode(), auth,
                 b"Content-Type: application/json", b"Content-Length: 12", body=b'{"content":\xff}'), 400, 50109),
    ]
    for raw, status, code in cases:
        answered, headers, body = exchange(server, raw)
        assert (answered, headers["content-type"]) == (status, "application/json"), body[:300]
        assert json.loads(body)["code"] == code
    still_serving(server, token)


MALFORMED_CHUNKS = [
    pytest.param(b"zz\r\n{}\r\n0\r\n\r\n", id="not-hex"),
    pytest.param(b"-2\r\n{}\r\n0\r\n\r\n", id="negative"),
    pytest.param(b"+2\r\n{}\r\n0\r\n\r\n", id="plus-sign"),
    pytest.param(b"0x2\r\n{}\r\n0\r\n\r\n", id="0x-prefix"),
    pytest.param(b"2 \r\n{}\r\n0\r\n\r\n", id="trailing-space"),
    pytest.param(b"2\r\n{}XX0\r\n\r\n", id="missing-terminator"),
]


@pytest.mark.parametrize("chunks", MALFORMED_CHUNKS)
def test_a_malformed_chunked_body_is_a_json_400_and_the_connection_closes(served, chunks):
    """gunicorn parses chunks as the app reads them: the app answers 400 (not 500) and, since the connection's
    remaining bytes cannot be framed, closes it even though the client asked to keep it alive (the read below
    ends only when the server closes)."""
    server, world = served
    raw = b"\r\n".join([f"POST /api/v10/channels/{world.channel_ids[0]}/messages HTTP/1.1".encode(),
                        b"Host: 127.0.0.1", f"Authorization: Bot {world.owner.token}".encode(),
                        b"Content-Type: application/json", b"Transfer-Encoding: chunked", b"", chunks])
    status, headers, body = exchange(server, raw)
    assert (status, headers["content-type"], headers["connection"]) == (400, "application/json", "close"), body
    assert json.loads(body) == {"message": "400: Bad Request", "code": 0}
    still_serving(server, world.owner.token)
