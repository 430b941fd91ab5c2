"""Inputs that used to answer 500: `@me` where an id belongs, malformed integers in the query, stored integers at
the edge of (or beyond) what the database columns hold. Each is a 400 in Discord's form, or stored and served."""
from __future__ import annotations

import json as stdjson
import re

import pytest

from app.api import channels, guilds, messages, users  # noqa: F401  (their routes fill ROUTES)
from app.api.routes import ROUTES
from app.auth.permissions import Permission
from app.domain import MAX_POSITION
from tests.support.responses import error, field_error_codes, json_body, no_content

PATH_PARAMETER = re.compile(r"<([a-z_]+)>")
ID_ROUTES = [spec for spec in ROUTES if any(name.endswith("_id") for name in PATH_PARAMETER.findall(spec.rule))]


@pytest.fixture
def world(client, make):
    """An owner, and real ids for every kind of path parameter, so only the id under test is wrong."""
    owner, member = make.actor(), make.actor()
    guild_id, channel_id = make.guild(owner)
    role_id = make.role(guild_id)
    make.member(guild_id, member, roles=[role_id])
    message = json_body(send(client, "POST", f"/api/v10/channels/{channel_id}/messages", json={"content": "hi"},
                                    headers=owner.headers), 200)
    hook = json_body(client.post(f"/api/v10/channels/{channel_id}/webhooks", json={"name": "hook"},
                                 headers=owner.headers), 200)
    return owner, {"guild_id": guild_id, "channel_id": channel_id, "role_id": role_id, "user_id": member.id,
                   "message_id": message["id"], "overwrite_id": role_id, "emoji": "%F0%9F%94%A5",
                   "webhook_id": hook["id"], "token": hook["token"]}


def send(client, method: str, url: str, *, json, headers: dict):
    """``json`` written by the standard library, which writes integers of any size (the app's orjson does not)."""
    return client.open(url, method=method, data=stdjson.dumps(json),
                       headers={**headers, "Content-Type": "application/json"})


def fill(rule: str, values: dict) -> str:
    return "/api/v10" + PATH_PARAMETER.sub(lambda match: str(values[match.group(1)]), rule)


@pytest.mark.parametrize("spec", ID_ROUTES, ids=lambda spec: f"{spec.method} {spec.rule}")
def test_at_me_in_any_id_segment_is_400_not_snowflake(app, client, world, spec):
    owner, ids = world
    routes = app.url_map.bind("localhost")
    for name in PATH_PARAMETER.findall(spec.rule):
        if not name.endswith("_id"):
            continue
        url = fill(spec.rule, {**ids, name: "@me"})
        endpoint, _arguments = routes.match(url, method=spec.method)
        if endpoint.rpartition(".")[2] != spec.endpoint:
            continue  # a route of its own takes @me there (GET /users/@me, DELETE .../reactions/{emoji}/@me)
        response = client.open(url, method=spec.method, json={}, headers=owner.headers)
        assert field_error_codes(response, name) == ["NUMBER_TYPE_COERCE"], (name, response.json)
        assert response.json["errors"][name]["_errors"][0]["message"] == 'Value "@me" is not snowflake.'


@pytest.mark.parametrize("value", ["--5", "-", "5-", "+5", " 5", "5 ", "٥", "1e3", "0x10", "", "9" * 13])
def test_a_malformed_limit_is_400_number_type_coerce(client, world, value):
    owner, ids = world
    for path in (f"/channels/{ids['channel_id']}/messages", f"/guilds/{ids['guild_id']}/members",
                 f"/channels/{ids['channel_id']}/messages/{ids['message_id']}/reactions/{ids['emoji']}",
                 f"/channels/{ids['channel_id']}/messages/pins"):
        response = client.get(f"/api/v10{path}", query_string={"limit": value}, headers=owner.headers)
        assert field_error_codes(response, "limit") == ["NUMBER_TYPE_COERCE"], (path, response.json)


def test_channels_can_still_be_created_after_one_at_the_highest_position(client, world):
    owner, ids = world
    url = f"/api/v10/guilds/{ids['guild_id']}/channels"
    top = json_body(send(client, "POST", url, json={"name": "top", "position": MAX_POSITION},
                         headers=owner.headers), 201)
    assert top["position"] == MAX_POSITION
    after = json_body(send(client, "POST", url, json={"name": "after"}, headers=owner.headers), 201)
    assert after["position"] == MAX_POSITION
    listed = json_body(client.get(url, headers=owner.headers), 200)
    assert [channel["name"] for channel in listed][-2:] == ["top", "after"]


@pytest.mark.parametrize("field, value, code", [
    ("position", MAX_POSITION + 1, "NUMBER_TYPE_MAX"),
    ("position", -1, "NUMBER_TYPE_MIN"),
    ("rate_limit_per_user", 21601, "NUMBER_TYPE_MAX"),
    ("position", 2**64, "NUMBER_TYPE_COERCE"),
    ("position", "12x", "NUMBER_TYPE_COERCE"),
])
def test_channel_integers_out_of_range_are_400_at_the_field(client, world, field, value, code):
    owner, ids = world
    response = send(client, "POST", f"/api/v10/guilds/{ids['guild_id']}/channels", json={"name": "c", field: value},
                           headers=owner.headers)
    assert field_error_codes(response, field) == [code]
    response = send(client, "PATCH", f"/api/v10/channels/{ids['channel_id']}", json={field: value},
                    headers=owner.headers)
    assert field_error_codes(response, field) == [code]


@pytest.mark.parametrize("permissions", [int(Permission.ALL), str(int(Permission.ALL))])
def test_the_largest_permission_set_is_stored_and_served_exactly(client, world, permissions):
    owner, ids = world
    role = json_body(send(client, "POST", f"/api/v10/guilds/{ids['guild_id']}/roles",
                                 json={"name": "big", "permissions": permissions}, headers=owner.headers), 200)
    assert role["permissions"] == str(permissions)
    roles = json_body(client.get(f"/api/v10/guilds/{ids['guild_id']}/roles", headers=owner.headers), 200)
    assert {r["id"]: r["permissions"] for r in roles}[role["id"]] == str(permissions)


@pytest.mark.parametrize("permissions", [2**63, str(2**64 - 1)])
def test_unknown_permission_bits_beyond_the_columns_range_are_refused_403(client, world, permissions):
    """Nobody holds bits Discord has not defined, so nobody may grant them: the value never reaches a column
    that could not hold it."""
    owner, ids = world
    for method, url, body in (
            ("POST", f"/api/v10/guilds/{ids['guild_id']}/roles", {"permissions": permissions}),
            ("PUT", f"/api/v10/channels/{ids['channel_id']}/permissions/{ids['role_id']}",
             {"type": 0, "allow": permissions, "deny": 0}),
            ("PATCH", f"/api/v10/channels/{ids['channel_id']}", {"permission_overwrites": [
                {"id": str(ids["role_id"]), "type": 0, "allow": 0, "deny": permissions}]})):
        error(send(client, method, url, json=body, headers=owner.headers), 403, 50013)


@pytest.mark.parametrize("permissions", [str(2**64), 2**64, -1, "-1", "1.5", 1.5, True, "0x10", " 1", ""])
def test_malformed_permission_sets_are_400_at_the_field(client, world, permissions):
    owner, ids = world
    response = send(client, "POST", f"/api/v10/guilds/{ids['guild_id']}/roles", json={"permissions": permissions},
                           headers=owner.headers)
    assert field_error_codes(response, "permissions")
    response = send(client, "PUT", f"/api/v10/channels/{ids['channel_id']}/permissions/{ids['role_id']}",
                          json={"type": 0, "allow": permissions, "deny": 0}, headers=owner.headers)
    assert field_error_codes(response, "allow")
    response = send(client, "PATCH", f"/api/v10/channels/{ids['channel_id']}", headers=owner.headers, json={
        "permission_overwrites": [{"id": str(ids["role_id"]), "type": 0, "allow": 0, "deny": permissions}]})
    assert field_error_codes(response, "permission_overwrites", "0", "deny")


@pytest.mark.parametrize("color, code", [(0xFFFFFF + 1, "NUMBER_TYPE_MAX"), (-1, "NUMBER_TYPE_MIN"),
                                         (2**70, "NUMBER_TYPE_COERCE")])
def test_role_colors_out_of_range_are_400_at_the_field(client, world, color, code):
    owner, ids = world
    response = send(client, "POST", f"/api/v10/guilds/{ids['guild_id']}/roles", json={"color": color},
                           headers=owner.headers)
    assert field_error_codes(response, "color") == [code]


@pytest.mark.parametrize("flags", [2**31, -1, 2**64])
def test_message_flags_out_of_range_are_400(client, world, flags):
    owner, ids = world
    response = send(client, "POST", f"/api/v10/channels/{ids['channel_id']}/messages",
                           json={"content": "x", "flags": flags}, headers=owner.headers)
    assert field_error_codes(response, "flags")


def test_an_integer_nonce_beyond_64_bits_is_400_and_the_largest_is_echoed(client, world):
    owner, ids = world
    url = f"/api/v10/channels/{ids['channel_id']}/messages"
    error(send(client, "POST", url, json={"content": "x", "nonce": 2**64}, headers=owner.headers), 400, 50035)
    sent = json_body(send(client, "POST", url, json={"content": "x", "nonce": 2**63 - 1}, headers=owner.headers),
                     200)
    assert sent["nonce"] in (2**63 - 1, str(2**63 - 1))
    no_content(client.delete(f"{url}/{sent['id']}", headers=owner.headers))


EMOJI_ROUTES = [spec for spec in ROUTES if "<emoji>" in spec.rule]


@pytest.mark.parametrize("spec", EMOJI_ROUTES, ids=lambda spec: f"{spec.method} {spec.rule}")
@pytest.mark.parametrize("emoji", [f"party:{2**63}", f"a:party:{2**64 - 1}", f":party:{2**64}", "party:" + "9" * 20,
                                   "party:-1"])
def test_custom_emoji_ids_beyond_the_snowflake_range_are_unknown_emoji(client, world, spec, emoji):
    owner, ids = world
    response = client.open(fill(spec.rule, {**ids, "emoji": emoji}), method=spec.method, headers=owner.headers)
    error(response, 400, 10014)
