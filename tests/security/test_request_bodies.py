"""Request bodies cost a small constant to refuse: per-route size limits (declared or chunked alike), a bound on
values walked, and no hostile body blocks a worker's hub (app/api/bodies.py)."""
from __future__ import annotations

import json
import socket

import gevent
import pytest

from app.api.bodies import DEFAULT_JSON_LIMIT, MAX_JSON_ELEMENTS, MESSAGE_JSON_LIMIT
from config import Settings
from tests.security.seed import seed
from tests.support.databases import migrated_database
from tests.support.responses import error, field_error_codes, json_body
from tests.support.server import gunicorn_server

parsing_only = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def message_count(client, owner, channel_id) -> int:
    return len(json_body(client.get(f"/api/v10/channels/{channel_id}/messages?limit=100", headers=owner.headers),
                         200))


def content_of_size(size: int) -> bytes:
    """A JSON message body of exactly ``size`` bytes (its content is too long to store, which is checked later
    than the size: a body of this size that passes the size limit is refused 400, not 413)."""
    frame = b'{"content": ""}'
    return frame[:-2] + b"a" * (size - len(frame)) + frame[-2:]


@parsing_only
def test_a_json_body_over_its_routes_limit_is_413_and_one_at_it_is_read(client, channel):
    owner, channel_id, url = channel
    headers = {**owner.headers, "Content-Type": "application/json"}
    error(client.post(url, data=content_of_size(MESSAGE_JSON_LIMIT + 1), headers=headers), 413, 40005)
    assert field_error_codes(client.post(url, data=content_of_size(MESSAGE_JSON_LIMIT), headers=headers),
                             "content") == ["BASE_TYPE_MAX_LENGTH"]
    # Any other route takes the default limit: a channel edit of a message's size is refused.
    error(client.patch(f"/api/v10/channels/{channel_id}", data=content_of_size(DEFAULT_JSON_LIMIT + 1),
                       headers=headers), 413, 40005)
    assert message_count(client, owner, channel_id) == 0


@pytest.mark.parametrize("element", [b"0", b"{}", b"[]", b'""'])
@parsing_only
def test_a_long_array_is_refused_by_its_count_of_values(client, channel, element):
    owner, channel_id, url = channel
    values = b",".join([element] * (MAX_JSON_ELEMENTS + 1))
    body = b'{"content": "x", "embeds": [' + values + b"]}"
    assert len(body) < MESSAGE_JSON_LIMIT
    response = client.post(url, data=body, headers={**owner.headers, "Content-Type": "application/json"})
    assert field_error_codes(response) == ["BASE_TYPE_MAX_LENGTH"]
    assert message_count(client, owner, channel_id) == 0


@parsing_only
def test_forms_are_held_to_the_json_limit_and_only_file_routes_take_large_multipart(client, channel):
    owner, channel_id, url = channel
    form = {"content": "a" * DEFAULT_JSON_LIMIT}
    error(client.patch(f"/api/v10/channels/{channel_id}", data=form, headers=owner.headers), 413, 40005)
    payload = json.dumps({"content": "a" * MESSAGE_JSON_LIMIT})
    error(client.post(url, data={"payload_json": payload}, content_type="multipart/form-data",
                      headers=owner.headers), 413, 40005)
    # A multipart body as large as an upload passes the size limit on a message route only.
    assert client.post(url, data={"payload_json": json.dumps({"content": "ok"}),
                                  "files[0]": (_bytes_file(1024 * 1024), "big.bin")},
                       content_type="multipart/form-data", headers=owner.headers).status_code != 413
    error(client.patch(f"/api/v10/channels/{channel_id}", data={"files[0]": (_bytes_file(1024 * 1024), "big.bin")},
                       content_type="multipart/form-data", headers=owner.headers), 413, 40005)


def _bytes_file(size: int):
    import io

    return io.BytesIO(b"x" * size)


# Real gunicorn: chunked bodies, and the hub watch.

@pytest.fixture(scope="module")
def served(tmp_path_factory):
    # On PostgreSQL, whose driver waits cooperatively: SQLite's calls hold the hub while the disk answers, which
    # on a loaded machine is sometimes longer than the watch's 50 ms, whatever the body.
    with migrated_database("postgres", tmp_path_factory.mktemp("bodies")) as settings:
        world = seed(settings)
        with gunicorn_server({"DATABASE_URL": settings.database_url, "WEB_WORKERS": "1",
                              "RATE_LIMIT_ENABLED": "false", "HUB_BLOCKING_THRESHOLD_MS": "50"}) as server:
            yield server, world


def send(server, head: bytes, body_parts, read_timeout: float = 30) -> tuple[int, bytes]:
    """Send a request head and its body parts from one greenlet while another reads the answer (the server may
    answer before the body is sent, and close); return the status and the body of the answer."""
    connection = socket.create_connection((server.host, server.port), timeout=read_timeout)

    def write():
        try:
            connection.sendall(head)
            for part in body_parts:
                connection.sendall(part)
        except OSError:
            pass  # the server answered and closed before the whole body was sent

    writer = gevent.spawn(write)
    answer = b""
    try:
        while b"\r\n\r\n" not in answer or len(answer) < _answer_length(answer):
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
    finally:
        writer.kill()
        connection.close()
    head_part, _, body = answer.partition(b"\r\n\r\n")
    return int(head_part.split()[1]), body


def _answer_length(answer: bytes) -> int:
    head, _, _ = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(head) + 4 + int(value)
    return len(answer) + 1


def chunked(body: bytes, size: int = 65536) -> list[bytes]:
    parts = [body[start:start + size] for start in range(0, len(body), size)]
    return [b"%x\r\n%s\r\n" % (len(part), part) for part in parts] + [b"0\r\n\r\n"]


def post_head(channel_id: int, token: str, *framing: bytes) -> bytes:
    return b"\r\n".join([f"POST /api/v10/channels/{channel_id}/messages HTTP/1.1".encode(), b"Host: 127.0.0.1",
                         f"Authorization: Bot {token}".encode(), b"Content-Type: application/json", *framing,
                         b"", b""])


def stored(server, world) -> list[str]:
    status, body = send(server, b"\r\n".join([
        f"GET /api/v10/channels/{world.channel_ids[0]}/messages?limit=100 HTTP/1.1".encode(), b"Host: 127.0.0.1",
        f"Authorization: Bot {world.owner.token}".encode(), b"", b""]), [])
    assert status == 200
    return [message["content"][:20] for message in json.loads(body)]


@pytest.mark.e2e
def test_a_chunked_body_over_the_limit_is_413_and_stores_nothing(served):
    server, world = served
    before = stored(server, world)
    chunked_head = post_head(world.channel_ids[0], world.owner.token, b"Transfer-Encoding: chunked")
    just_over = b'{"content": "over the limit", "embeds": [], "nonce": "' + b"n" * MESSAGE_JSON_LIMIT + b'"}'
    status, body = send(server, chunked_head, chunked(just_over))
    assert (status, json.loads(body)["code"]) == (413, 40005)
    far_over = b'{"content": "far over", "nonce": "' + b"n" * (Settings().max_upload_bytes + 1024) + b'"}'
    status, body = send(server, chunked_head, chunked(far_over))
    assert (status, json.loads(body)["code"]) == (413, 40005)
    assert stored(server, world) == before

    status, body = send(server, chunked_head, chunked(b'{"content": "chunked and small"}'))
    assert status == 200 and json.loads(body)["content"] == "chunked and small"


@pytest.mark.e2e
def test_hostile_bodies_never_block_the_hub(served):
    server, world = served
    channel_id, token = world.channel_ids[0], world.owner.token
    near_limit = MESSAGE_JSON_LIMIT - 64
    zeros = b'{"embeds": [' + b",".join([b"0"] * (near_limit // 2 - 20)) + b"]}"
    objects = b'{"embeds": [' + b",".join([b"{}"] * (near_limit // 3 - 20)) + b"]}"
    top_level_array = b"[" + b",".join([b"{}"] * (near_limit // 3 - 2)) + b"]"
    deep = b'{"embeds": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    huge = b"[" + b"0," * (21 * 1024 * 1024 // 2) + b"0]"
    cases = [
        (post_head(channel_id, token, f"Content-Length: {len(zeros)}".encode()), [zeros], 400),
        (post_head(channel_id, token, f"Content-Length: {len(objects)}".encode()), [objects], 400),
        (post_head(channel_id, token, f"Content-Length: {len(top_level_array)}".encode()), [top_level_array], 400),
        (post_head(channel_id, token, b"Transfer-Encoding: chunked"), chunked(objects), 400),
        (post_head(channel_id, token, f"Content-Length: {len(deep)}".encode()), [deep], 400),
        (post_head(channel_id, token, f"Content-Length: {len(huge)}".encode()), [huge], 413),
        (post_head(channel_id, token, b"Transfer-Encoding: chunked"), chunked(huge, 1024 * 1024), 413),
    ]
    for _round in range(3):
        for head, parts, expected in cases:
            status, _body = send(server, head, parts)
            assert status == expected, (_round, head[-80:], expected)
    # The watch reports from the worker once the blocking request has ended: a request after the last one
    # gives a pending report its turn.
    assert stored(server, world) is not None
    gevent.sleep(0.5)
    stored(server, world)
    blocked = [line for line in server.log().splitlines() if "gevent hub blocked" in line]
    assert blocked == []
