"""Url-encoded bodies (discord.py never sends them; other clients and curl do): decoded exactly, or refused.

werkzeug keeps an invalid percent-escape as literal text and replaces bytes that are not UTF-8; storing either
would store something the client did not mean, so both are refused with 400 50035 and nothing is stored."""
from __future__ import annotations

import pytest

from tests.support.responses import error, json_body

FORM = "application/x-www-form-urlencoded"
parsing_only = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


@pytest.fixture
def channel(client, make):
    owner = make.actor()
    _guild_id, channel_id = make.guild(owner)
    return owner, f"/api/v10/channels/{channel_id}/messages"


def post_form(client, owner, url, body: bytes):
    return client.post(url, data=body, headers={**owner.headers, "Content-Type": FORM})


def stored_contents(client, owner, url) -> list[str]:
    return [m["content"] for m in json_body(client.get(url, headers=owner.headers), 200)]


@pytest.mark.parametrize("body", [b"content=a%ZZb", b"content=100%", b"content=%4", b"content=%%41", b"con%tent=x",
                                  b"content=%E9t%E9", b"content=%C3", b"content=caf\xe9"])
@parsing_only
def test_invalid_percent_escapes_or_bytes_are_400_and_store_nothing(client, channel, body):
    owner, url = channel
    response = error(post_form(client, owner, url, body), 400, 50035)
    assert response["errors"]["_errors"][0]["code"] == "FORM_ENCODING_INVALID"
    assert stored_contents(client, owner, url) == []


@pytest.mark.parametrize("body, content", [
    (b"content=caf%C3%A9+%26+cr%C3%A8me%3D%25", "café & crème=%"),
    (b"content=a%2bb%2Fc", "a+b/c"),
    (b"content=first&content=second", "first"),
    ("content=déjà".encode(), "déjà"),
    (b"tts=false&content=%F0%9F%94%A5", "🔥"),
])
def test_valid_forms_are_decoded_exactly(client, channel, body, content):
    owner, url = channel
    assert json_body(post_form(client, owner, url, body), 200)["content"] == content
    assert stored_contents(client, owner, url) == [content]


@parsing_only
def test_a_form_with_more_fields_than_the_limit_is_413(client, channel):
    owner, url = channel
    error(post_form(client, owner, url, b"&".join(b"f%d=1" % n for n in range(1001)) + b"&content=x"), 413, 40005)
