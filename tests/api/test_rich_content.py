"""Embeds and components are checked as Discord checks them (400 50035 at the field's path) and stored as sent, so
nothing stored can break a reader (issue 18: one bad embed once broke discord.py's history() for everyone)."""
from __future__ import annotations

import json

import pytest

from tests.api.test_messages import history, post, room, send  # noqa: F401  (room is a fixture)
from tests.support.responses import field_error_codes, json_body

BUTTON = {"type": 2, "style": 1, "label": "Go", "custom_id": "go"}
LINK = {"type": 2, "style": 5, "label": "Docs", "url": "https://example.com"}
SELECT = {"type": 3, "custom_id": "pick", "placeholder": "Choose", "min_values": 1, "max_values": 2,
          "options": [{"label": "A", "value": "a", "description": "first"}, {"label": "B", "value": "b"}]}

HOSTILE_EMBEDS = [
    ({"timestamp": "not a date"}, ("timestamp",), "DATE_TYPE_PARSE"),
    ({"color": 2**70}, ("color",), "NUMBER_TYPE_COERCE"),
    ({"color": 0x1000000}, ("color",), "NUMBER_TYPE_MAX"),
    ({"color": -1}, ("color",), "NUMBER_TYPE_MIN"),
    ({"color": 1.5}, ("color",), "NUMBER_TYPE_COERCE"),
    ({"url": "javascript:alert(1)"}, ("url",), "URL_TYPE_INVALID_SCHEME"),
    ({"url": "https://ex ample.com"}, ("url",), "URL_TYPE_INVALID_SCHEME"),
    ({"image": {"url": "data:text/html,hi"}}, ("image", "url"), "URL_TYPE_INVALID_SCHEME"),
    ({"image": {}}, ("image", "url"), "BASE_TYPE_REQUIRED"),
    ({"thumbnail": "https://x"}, ("thumbnail",), "DICT_TYPE_CONVERT"),
    ({"author": {"name": "a", "icon_url": "ftp://x"}}, ("author", "icon_url"), "URL_TYPE_INVALID_SCHEME"),
    ({"author": {"url": "https://x"}}, ("author", "name"), "BASE_TYPE_REQUIRED"),
    ({"footer": {"text": 5}}, ("footer", "text"), "BASE_TYPE_STRING"),
    ({"fields": {"name": "n"}}, ("fields",), "BASE_TYPE_ARRAY"),
    ({"fields": [{"name": "n"}]}, ("fields", "0", "value"), "BASE_TYPE_REQUIRED"),
    ({"fields": [{"name": "n", "value": "v", "inline": "yes"}]}, ("fields", "0", "inline"), "BOOLEAN_TYPE_COERCE"),
    ({"title": ["t"]}, ("title",), "BASE_TYPE_STRING"),
    ({"titel": "typo"}, ("titel",), "UNKNOWN_FIELD"),
]


@pytest.mark.parametrize(("embed", "path", "code"), HOSTILE_EMBEDS, ids=[str(e[1]) for e in HOSTILE_EMBEDS])
def test_a_bad_embed_is_refused_at_its_path(client, room, embed, path, code):  # noqa: F811
    # The standard library's encoder, which writes integers of any size (2**70) as JSON does.
    response = client.post(f"/api/v10/channels/{room.channel_id}/messages", headers=room.member.headers,
                           data=json.dumps({"content": "x", "embeds": [{"title": "ok"}, embed]}),
                           content_type="application/json")
    assert field_error_codes(response, "embeds", "1", *path) == [code]
    assert history(client, room.owner, room.channel_id) == []


def test_a_full_embed_is_stored_as_sent_with_its_timestamp_in_discords_form(client, room):  # noqa: F811
    embed = {"title": "T", "description": "D", "url": "https://example.com/a", "timestamp": "2026-12-06T10:00:00Z",
             "color": 0xFF00FF, "footer": {"text": "f", "icon_url": "https://example.com/f.png"},
             "image": {"url": "attachment://dot.png"}, "thumbnail": {"url": "https://example.com/t.png"},
             "author": {"name": "a", "url": "https://example.com", "icon_url": "https://example.com/a.png"},
             "fields": [{"name": "n", "value": "v", "inline": True}]}
    stored = send(client, room.member, room.channel_id, "x", embeds=[embed])["embeds"][0]
    assert stored == {**embed, "type": "rich", "timestamp": "2026-12-06T10:00:00.000000+00:00"}
    assert history(client, room.owner, room.channel_id)[0]["embeds"] == [stored]


def test_components_are_stored_and_returned_as_sent(client, room):  # noqa: F811
    rows = [{"type": 1, "components": [BUTTON, LINK]}, {"type": 1, "components": [SELECT]}]
    message = send(client, room.member, room.channel_id, "x", components=rows)
    assert message["components"] == rows
    assert history(client, room.owner, room.channel_id)[0]["components"] == rows
    only_components = json_body(post(client, room.member, room.channel_id, components=rows[:1]), 200)
    assert only_components["content"] == "" and only_components["components"] == rows[:1]
    edited = json_body(client.patch(f"/api/v10/channels/{room.channel_id}/messages/{message['id']}",
                                    json={"components": []}, headers=room.member.headers), 200)
    assert edited["components"] == []


HOSTILE_COMPONENTS = [
    ([{"type": 2, "style": 1, "label": "x", "custom_id": "c"}], ("0", "type"), "BASE_TYPE_CHOICES"),
    ([{"type": 1, "components": []}], ("0", "components"), "BASE_TYPE_MIN_LENGTH"),
    ([{"type": 1, "components": [BUTTON] * 6}], ("0", "components"), "BASE_TYPE_MAX_LENGTH"),
    ([{"type": 1, "components": [BUTTON]}] * 6, (), "BASE_TYPE_MAX_LENGTH"),
    ([{"type": 1, "components": [{**BUTTON, "label": "l" * 81}]}], ("0", "components", "0", "label"),
     "BASE_TYPE_MAX_LENGTH"),
    ([{"type": 1, "components": [{**LINK, "url": "javascript:x"}]}], ("0", "components", "0", "url"),
     "URL_TYPE_INVALID_SCHEME"),
    ([{"type": 1, "components": [{**BUTTON, "style": 9}]}], ("0", "components", "0", "style"), "BASE_TYPE_CHOICES"),
    ([{"type": 1, "components": [{**BUTTON, "custom_id": "a"}, {**BUTTON, "custom_id": "a"}]}],
     ("0", "components", "1", "custom_id"), "COMPONENT_CUSTOM_ID_DUPLICATED"),
    ([{"type": 1, "components": [{**SELECT, "options": [{"label": "A", "value": "a"}] * 26}]}],
     ("0", "components", "0", "options"), "BASE_TYPE_MAX_LENGTH"),
    ([{"type": 1, "components": [{**BUTTON, "onclick": "x"}]}], ("0", "components", "0", "onclick"),
     "UNKNOWN_FIELD"),
]


@pytest.mark.parametrize(("rows", "path", "code"), HOSTILE_COMPONENTS,
                         ids=[str(c[1]) + c[2] for c in HOSTILE_COMPONENTS])
def test_bad_components_are_refused(client, room, rows, path, code):  # noqa: F811
    response = post(client, room.member, room.channel_id, content="x", components=rows)
    codes = field_error_codes(response, "components", *path)
    assert code in codes
    assert history(client, room.owner, room.channel_id) == []


def test_a_select_menu_with_a_button_in_one_row_is_refused(client, room):  # noqa: F811
    response = post(client, room.member, room.channel_id, content="x",
                    components=[{"type": 1, "components": [SELECT, BUTTON]}])
    assert response.status_code == 400 and response.get_json()["code"] == 50035
