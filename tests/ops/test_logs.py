"""JSON access lines, request ids carried on every line of a request, and no secrets in the logs."""
from __future__ import annotations

import re
import uuid

import gevent
import pytest

from app.messages.base import StoreUnavailable
from app.messages.sql import SqlMessageStore

MINTED_ID = re.compile(r"[0-9a-f]{32}")


def test_one_access_line_per_request_names_route_template_status_user_and_duration(client, make, log_lines):
    owner = make.actor()
    _guild_id, channel_id = make.guild(owner)

    response = client.get(f"/api/v10/channels/{channel_id}", headers={**owner.headers, "X-Request-ID": "edge-7f3a"})

    assert response.status_code == 200
    [line] = log_lines.records("chatstore.access")
    assert line["route"] == "/api/v10/channels/<channel_id>"
    assert str(channel_id) not in log_lines.text
    assert (line["method"], line["status"], line["user_id"], line["request_id"]) == ("GET", 200, str(owner.id),
                                                                                       "edge-7f3a")
    assert line["level"] == "INFO" and line["duration_ms"] > 0 and line["time"].endswith("+00:00")


def test_unauthenticated_and_unknown_routes_are_logged_without_a_user(client, log_lines):
    client.get("/api/v10/users/@me")
    client.get("/no/such/route")

    lines = log_lines.records("chatstore.access")
    assert [(line["route"], line["status"], line["user_id"]) for line in lines] == [
        ("/api/v10/users/@me", 401, None), ("<unmatched>", 404, None)]


def test_a_valid_request_id_is_kept_and_returned(client):
    response = client.get("/healthz", headers={"X-Request-ID": "lb-1.2:abc_DEF-9"})
    assert response.headers["X-Request-ID"] == "lb-1.2:abc_DEF-9"


@pytest.mark.parametrize("offered", [None, "", "has space", "x" * 129, "semi;colon", "quote\"", "ünicode", "a/b"])
def test_an_absent_or_unsafe_request_id_is_replaced_by_a_new_one(client, log_lines, offered):
    headers = {} if offered is None else {"X-Request-ID": offered}

    first = client.get("/healthz", headers=headers).headers["X-Request-ID"]
    second = client.get("/healthz", headers=headers).headers["X-Request-ID"]

    assert MINTED_ID.fullmatch(first) and MINTED_ID.fullmatch(second) and first != second
    assert [line["request_id"] for line in log_lines.records("chatstore.access")] == [first, second]


def test_every_line_of_a_request_carries_its_id_even_with_requests_interleaved(client, make, resources, log_lines,
                                                                                monkeypatch):
    owner = make.actor()
    _guild_id, channel_id = make.guild(owner)

    def slow_then_unavailable(*_args, **_kwargs):
        gevent.sleep(0.05)  # both requests are inside the store at once, in one process
        raise StoreUnavailable("replica timed out")

    monkeypatch.setattr(resources.message_store.layer(SqlMessageStore), "list_messages", slow_then_unavailable)

    def fetch(request_id):
        return client.get(f"/api/v10/channels/{channel_id}/messages",
                          headers={**owner.headers, "X-Request-ID": request_id})

    responses = [g.get() for g in gevent.joinall([gevent.spawn(fetch, "req-a"), gevent.spawn(fetch, "req-b")])]

    assert [r.status_code for r in responses] == [503, 503]
    warnings = log_lines.records("app.api.errors")
    access = log_lines.records("chatstore.access")
    assert sorted(line["request_id"] for line in warnings) == ["req-a", "req-b"]
    assert sorted(line["request_id"] for line in access) == ["req-a", "req-b"]
    assert all("replica timed out" in line["message"] for line in warnings)


def test_tokens_and_message_content_never_reach_the_logs(client, make, resources, log_lines, monkeypatch):
    owner = make.actor()
    _guild_id, channel_id = make.guild(owner)
    content = f"confidential-{uuid.uuid4().hex}"
    secret = owner.token.partition(".")[2]
    messages = f"/api/v10/channels/{channel_id}/messages"

    created = client.post(messages, json={"content": content}, headers=owner.headers)
    client.post(messages, data=f'{{"content": "{content}", broken', headers={**owner.headers,
                                                                          "Content-Type": "application/json"})
    client.get(messages, headers={"Authorization": f"Bot {owner.token}x"})
    monkeypatch.setattr(resources.message_store.layer(SqlMessageStore), "get_message",
                        lambda *_: (_ for _ in ()).throw(RuntimeError("driver failure")))
    failed = client.get(f"{messages}/{created.get_json()['id']}", headers=owner.headers)

    assert created.status_code == 200 and failed.status_code == 500
    assert len(log_lines.records("chatstore.access")) == 4
    assert "unhandled error" in log_lines.text and "driver failure" in log_lines.text
    assert content not in log_lines.text
    assert secret not in log_lines.text and owner.token not in log_lines.text
