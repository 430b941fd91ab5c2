"""Hostile input: each gets a clear 4xx in Discord's error form and changes nothing; content round-trips exactly."""
from __future__ import annotations

import json

import orjson
import pytest

from app.api.bodies import MESSAGE_JSON_LIMIT
from tests.support.responses import error, field_error_codes, json_body

JSON = "application/json"
#: Parsing happens before any database access, so refusals are checked on one backend; what is stored and read
#: back (round trips, NUL) on every backend.
parsing_only = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def state(client, actor, channel_id) -> tuple:
    """Everything a request could have changed in the channel: its messages and the channel itself."""
    messages = json_body(client.get(f"/api/v10/channels/{channel_id}/messages?limit=100", headers=actor.headers), 200)
    return messages, json_body(client.get(f"/api/v10/channels/{channel_id}", headers=actor.headers), 200)


def post_raw(client, actor, url, body: bytes, content_type: str = JSON):
    return client.post(url, data=body, headers={**actor.headers, "Content-Type": content_type})


def nested(depth: int) -> bytes:
    # Under a key Discord does not document (ignored, as Discord ignores it): embeds refuse unknown keys.
    return b'{"content": "x", "extra": [' + b'{"a": ' * depth + b"1" + b"}" * depth + b"]}"


BAD_JSON = [
    pytest.param(b'{"content": "x"', id="truncated"),
    pytest.param(b'{"content": "\xff\xfe"}', id="invalid-utf8"),
    pytest.param(b'{"content": "\\ud800"}', id="lone-surrogate-escape"),
    pytest.param(b'{"content": "x", "flags": NaN}', id="nan"),
    pytest.param(b'{"content": "x", "flags": 1' + b"0" * 400 + b"}", id="400-digit-number"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, id="100000-levels"),
    pytest.param(nested(300), id="300-levels"),  # parses, but orjson could never write it back
    pytest.param(nested(40), id="40-levels"),
    pytest.param(b'{"content": "x"} trailing', id="trailing-garbage"),
]


@pytest.mark.parametrize("body", BAD_JSON)
@parsing_only
def test_unparsable_or_too_deep_json_is_50109_and_stores_nothing(client, channel, body):
    owner, channel_id, url = channel
    before = state(client, owner, channel_id)
    error(post_raw(client, owner, url, body), 400, 50109)
    assert state(client, owner, channel_id) == before


@parsing_only
def test_nesting_up_to_the_limit_is_accepted(client, channel):
    owner, _channel_id, url = channel
    json_body(post_raw(client, owner, url, nested(20)), 200)


WRONG_FORMS = [
    pytest.param({"content": 5}, ("content",), "BASE_TYPE_STRING", id="content-number"),
    pytest.param({"content": ["x"]}, ("content",), "BASE_TYPE_STRING", id="content-array"),
    pytest.param({"content": "x", "tts": "maybe"}, ("tts",), "BOOLEAN_TYPE_COERCE", id="tts-string"),
    pytest.param({"content": "x", "embeds": {}}, ("embeds",), "BASE_TYPE_ARRAY", id="embeds-object"),
    pytest.param({"content": "x", "flags": 2**64}, ("flags",), "NUMBER_TYPE_COERCE", id="flags-overflow"),
    pytest.param({"content": "x" * 2001}, ("content",), "BASE_TYPE_MAX_LENGTH", id="content-2001"),
    pytest.param({"content": "a\x00b"}, ("content",), "STRING_TYPE_INVALID_CHARACTERS", id="nul-in-content"),
    pytest.param({"content": "x", "nonce": "\x00"}, ("nonce",), "STRING_TYPE_INVALID_CHARACTERS", id="nul-in-nonce"),
    pytest.param({"content": "x", "embeds": [{"title": "t\x00"}]}, ("embeds", "0", "title"),
                 "STRING_TYPE_INVALID_CHARACTERS", id="nul-in-embed"),
    pytest.param({"content": "x", "message_reference": {"message_id": 2**64}}, ("message_reference", "message_id"),
                 "NUMBER_TYPE_COERCE", id="reference-overflows-64-bits"),
    pytest.param({"content": "x", "message_reference": {"message_id": -1}}, ("message_reference", "message_id"),
                 "NUMBER_TYPE_COERCE", id="reference-negative"),
    pytest.param({"content": "x", "message_reference": {"message_id": "12abc"}},
                 ("message_reference", "message_id"), "NUMBER_TYPE_COERCE", id="reference-not-digits"),
    pytest.param({"content": "x", "message_reference": {"message_id": 1.5}}, ("message_reference", "message_id"),
                 "NUMBER_TYPE_COERCE", id="reference-float"),
    pytest.param({"content": "x", "message_reference": {"message_id": True}},
                 ("message_reference", "message_id"), "NUMBER_TYPE_COERCE", id="reference-boolean"),
]


@parsing_only
@pytest.mark.parametrize(("body", "path", "code"), WRONG_FORMS)
def test_wrong_types_and_values_are_50035_at_their_field(client, channel, body, path, code):
    owner, channel_id, url = channel
    before = state(client, owner, channel_id)
    # The stdlib encoder, since orjson (the test client's) refuses integers beyond 64 bits.
    response = post_raw(client, owner, url, json.dumps(body).encode())
    assert code in field_error_codes(response, *path)
    assert state(client, owner, channel_id) == before


@pytest.mark.parametrize("body", [b"[]", b'"content"', b"5", b"null"])
@parsing_only
def test_a_body_that_is_no_object_is_refused(client, channel, body):
    owner, channel_id, url = channel
    before = state(client, owner, channel_id)
    assert field_error_codes(post_raw(client, owner, url, body)) == ["DICT_TYPE_CONVERT"]
    assert state(client, owner, channel_id) == before


@parsing_only
def test_an_unsupported_content_type_is_refused(client, channel):
    owner, channel_id, url = channel
    before = state(client, owner, channel_id)
    assert field_error_codes(post_raw(client, owner, url, b'{"content": "x"}', "text/plain")) == [
        "CONTENT_TYPE_INVALID"]
    assert state(client, owner, channel_id) == before


@parsing_only
def test_a_body_over_the_size_limit_is_413_40005(client, channel):
    owner, channel_id, url = channel
    before = state(client, owner, channel_id)
    body = b'{"content": "' + b"a" * MESSAGE_JSON_LIMIT + b'"}'
    error(post_raw(client, owner, url, body), 413, 40005)
    assert state(client, owner, channel_id) == before


def without_identity(message: dict) -> dict:
    return {key: value for key, value in message.items() if key not in ("id", "timestamp", "nonce")}


def test_unknown_fields_are_ignored_and_change_nothing(client, channel):
    owner, channel_id, url = channel
    plain = json_body(client.post(url, json={"content": "same"}, headers=owner.headers), 200)
    # Fields clients send that ask for nothing (empty, null), read-only fields of the message object, and junk.
    decorated = json_body(client.post(url, json={
        "content": "same", "sticker_ids": [], "components": [], "attachments": [], "poll": None,
        "applied_tags": ["1"], "author": {"id": "1", "username": "forged"}, "id": "42", "pinned": True,
        "mention_everyone": True, "zzz": {"deep": [1, 2, {"x": None}]},
    }, headers=owner.headers), 200)
    assert without_identity(decorated) == without_identity(plain)
    assert decorated["id"] != "42" and decorated["author"]["id"] == str(owner.id) and decorated["pinned"] is False

    edited = json_body(client.patch(f"{url}/{plain['id']}", json={
        "content": "edited", "attachments": [], "author": {"id": "1"}, "channel_id": "1", "type": 19,
    }, headers=owner.headers), 200)
    assert (edited["content"], edited["author"]["id"], edited["channel_id"], edited["type"]) == (
        "edited", str(owner.id), str(channel_id), 0)


BAD_IDS = ["abc", "-1", "1e3", "0x10", str(2**64), "9" * 21, "\u0661\u0662\u0663", "%00", "%ff%fe", "1%20"]


@pytest.mark.parametrize("raw", BAD_IDS)
@parsing_only
def test_ids_that_are_not_64_bit_snowflakes_are_400_in_every_position(client, channel, raw):
    owner, channel_id, url = channel
    message = json_body(client.post(url, json={"content": "keep"}, headers=owner.headers), 200)
    before = state(client, owner, channel_id)
    attempts = [
        ("get", f"/api/v10/channels/{raw}/messages", "channel_id"),
        ("post", f"/api/v10/channels/{raw}/messages", "channel_id"),
        ("get", f"{url}/{raw}", "message_id"),
        ("delete", f"{url}/{raw}", "message_id"),
        ("patch", f"{url}/{raw}", "message_id"),
        ("delete", f"{url}/{message['id']}/reactions/%F0%9F%91%8D/{raw}", "user_id"),
        ("get", f"{url}?before={raw}", "before"),
        ("get", f"{url}?around={raw}", "around"),
    ]
    for method, target, field in attempts:
        response = getattr(client, method)(target, json={"content": "changed"}, headers=owner.headers)
        assert field_error_codes(response, field) == ["NUMBER_TYPE_COERCE"], (method, target)
    assert state(client, owner, channel_id) == before


@parsing_only
def test_huge_query_values_are_refused_without_echoing_them_whole(client, channel):
    owner, _channel_id, url = channel
    huge = "9" * 100_000
    for query, field in ((f"before={huge}", "before"), (f"limit={huge}", "limit"), (f"after={'a' * 100_000}", "after")):
        response = client.get(f"{url}?{query}", headers=owner.headers)
        assert field_error_codes(response, field) == ["NUMBER_TYPE_COERCE"]
        assert len(response.get_data()) < 1000
    error(client.get(f"{url}/pins?before={'x' * 100_000}", headers=owner.headers), 400, 50035)


@parsing_only
def test_invalid_utf8_in_urls_is_a_clear_400(client, channel):
    owner, channel_id, url = channel
    message = json_body(client.post(url, json={"content": "keep"}, headers=owner.headers), 200)
    before = state(client, owner, channel_id)
    error(client.put(f"{url}/{message['id']}/reactions/%ff%fe/@me", headers=owner.headers), 400, 10014)
    error(client.get(f"{url}?limit=%ff", headers=owner.headers), 400, 50035)
    error(client.get(f"/api/v10/channels/{channel_id}%ff/messages", headers=owner.headers), 400, 50035)
    assert state(client, owner, channel_id) == before


def test_a_form_body_with_nul_is_refused_like_json(client, channel):
    owner, channel_id, url = channel
    before = state(client, owner, channel_id)
    response = client.post(url, data={"content": "a\x00b"}, headers=owner.headers)
    assert field_error_codes(response, "content") == ["STRING_TYPE_INVALID_CHARACTERS"]
    response = client.post(url, data={"payload_json": '{"content": "a\\u0000b"}'}, headers=owner.headers,
                           content_type="multipart/form-data")
    assert field_error_codes(response, "content") == ["STRING_TYPE_INVALID_CHARACTERS"]
    assert state(client, owner, channel_id) == before


EXACT_CONTENT = [
    pytest.param("👩\u200d👩\u200d👧\u200d👦 🇺🇦 👍🏽 ❤️", id="emoji-sequences"),
    pytest.param("e\u0301 a\u0308 \u1100\u1161\u11a8 Z\u0351\u0352\u0353\u0354", id="combining-marks-not-normalised"),
    pytest.param("\u00e9 vs e\u0301", id="precomposed-and-decomposed"),
    pytest.param("مرحبا بالعالم \u202eabc\u202c שלום", id="rtl-and-bidi-controls"),
    pytest.param("\ufeffbom \u200bzero-width \u2028line\u2029para", id="invisible-characters"),
    pytest.param("𝕏𝔂𝔃 𠀀 \U0010fffd", id="astral-planes"),
    pytest.param("  padded\r\n\ttabs  ", id="whitespace-kept"),
    pytest.param("\x01\x1f\x7f", id="control-characters"),
    pytest.param("😀" * 2000, id="2000-four-byte-characters"),
    pytest.param("<script>alert(1)</script> ' OR 1=1; --", id="markup-and-sql"),
]


@pytest.mark.parametrize("content", EXACT_CONTENT)
def test_content_round_trips_exactly(client, channel, content):
    owner, _channel_id, url = channel
    created = json_body(client.post(url, json={"content": content}, headers=owner.headers), 200)
    assert created["content"] == content
    fetched = client.get(f"{url}/{created['id']}", headers=owner.headers)
    assert json_body(fetched, 200)["content"] == content
    # The bytes on the wire are the UTF-8 of the text itself.
    assert orjson.dumps(content) in fetched.get_data()
    assert json_body(client.get(url, headers=owner.headers), 200)[0]["content"] == content
    edited = json_body(client.patch(f"{url}/{created['id']}", json={"content": content[::-1]},
                                    headers=owner.headers), 200)
    assert edited["content"] == content[::-1]
