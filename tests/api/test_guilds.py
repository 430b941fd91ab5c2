"""POST /guilds, GET /guilds/{id} (with_counts) and GET /guilds/{id}/channels."""
import pytest

from app.auth.permissions import Permission
from tests.support.responses import error, field_error_codes, json_body


def test_created_guild_has_everyone_role_general_channel_and_its_owner_as_member(client, make):
    alice = make.actor("alice")
    guild = json_body(client.post("/api/v10/guilds", json={"name": "Alice's place"}, headers=alice.headers), 201)
    assert guild["name"] == "Alice's place"
    assert guild["owner_id"] == str(alice.id)
    assert isinstance(guild["id"], str) and guild["id"].isdigit()
    assert guild["roles"] == [{
        "id": guild["id"], "name": "@everyone", "color": 0,
        "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False, "icon": None, "unicode_emoji": None, "position": 0,
        "permissions": str(int(Permission.DEFAULT_EVERYONE)), "managed": False, "mentionable": False, "flags": 0,
    }]
    assert "approximate_member_count" not in guild

    channels = json_body(client.get(f"/api/v10/guilds/{guild['id']}/channels", headers=alice.headers), 200)
    assert [(c["name"], c["type"], c["guild_id"]) for c in channels] == [("general", 0, guild["id"])]
    member = json_body(client.get(f"/api/v10/guilds/{guild['id']}/members/{alice.id}", headers=alice.headers), 200)
    assert member["user"]["id"] == str(alice.id)


def test_get_guild_returns_what_discord_py_reads(client, make):
    alice = make.actor()
    guild_id, _ = make.guild(alice, name="reading room")
    guild = json_body(client.get(f"/api/v10/guilds/{guild_id}", headers=alice.headers), 200)
    assert (guild["id"], guild["name"], guild["owner_id"]) == (str(guild_id), "reading room", str(alice.id))
    assert [role["id"] for role in guild["roles"]] == [str(guild_id)]
    for key in ("icon", "splash", "features", "emojis", "verification_level", "premium_tier", "preferred_locale",
                "system_channel_id", "mfa_level", "nsfw_level"):
        assert key in guild


@pytest.mark.parametrize("flag", ["1", "true", "True"])
def test_with_counts_reports_the_member_count(client, make, flag):
    alice, bob, carol = make.actor(), make.actor(), make.actor()
    guild_id, _ = make.guild(alice)
    make.member(guild_id, bob)
    make.member(guild_id, carol)
    guild = json_body(client.get(f"/api/v10/guilds/{guild_id}?with_counts={flag}", headers=bob.headers), 200)
    assert guild["approximate_member_count"] == 3
    assert guild["approximate_presence_count"] == 0


@pytest.mark.parametrize("flag", ["0", "false", "False"])
def test_with_counts_false_leaves_the_counts_out(client, make, flag):
    alice = make.actor()
    guild_id, _ = make.guild(alice)
    guild = json_body(client.get(f"/api/v10/guilds/{guild_id}?with_counts={flag}", headers=alice.headers), 200)
    assert "approximate_member_count" not in guild


def test_with_counts_not_a_boolean_is_a_form_error(client, make):
    alice = make.actor()
    guild_id, _ = make.guild(alice)
    response = client.get(f"/api/v10/guilds/{guild_id}?with_counts=yes", headers=alice.headers)
    assert field_error_codes(response, "with_counts") == ["BOOLEAN_TYPE_COERCE"]


def test_unknown_guild_is_10004_and_a_stranger_gets_50001(client, make):
    alice, stranger = make.actor(), make.actor()
    guild_id, _ = make.guild(alice)
    error(client.get("/api/v10/guilds/4242", headers=alice.headers), 404, 10004)
    error(client.get("/api/v10/guilds/4242/channels", headers=alice.headers), 404, 10004)
    error(client.get(f"/api/v10/guilds/{guild_id}", headers=stranger.headers), 403, 50001)
    error(client.get(f"/api/v10/guilds/{guild_id}/channels", headers=stranger.headers), 403, 50001)


@pytest.mark.parametrize("bad_id", ["abc", "-1", "1.5", str(2**63), "١٢٣"])
def test_non_snowflake_guild_id_is_a_form_error(client, make, bad_id):
    alice = make.actor()
    response = client.get(f"/api/v10/guilds/{bad_id}", headers=alice.headers)
    assert field_error_codes(response, "guild_id") == ["NUMBER_TYPE_COERCE"]


def test_guild_endpoints_need_a_token(client, make):
    alice = make.actor()
    guild_id, _ = make.guild(alice)
    for response in (client.post("/api/v10/guilds", json={"name": "no token"}),
                     client.get(f"/api/v10/guilds/{guild_id}"),
                     client.get(f"/api/v10/guilds/{guild_id}/channels")):
        assert json_body(response, 401) == {"message": "401: Unauthorized", "code": 0}


@pytest.mark.parametrize("body, code", [
    ({}, "BASE_TYPE_REQUIRED"),
    ({"name": "x"}, "BASE_TYPE_MIN_LENGTH"),
    ({"name": "x" * 101}, "BASE_TYPE_MAX_LENGTH"),
    ({"name": 12345}, "BASE_TYPE_STRING"),
    ({"name": None}, "BASE_TYPE_STRING"),
])
def test_invalid_guild_name_is_a_nested_form_error(client, make, body, code):
    alice = make.actor()
    response = client.post("/api/v10/guilds", json=body, headers=alice.headers)
    assert field_error_codes(response, "name") == [code]


def test_invalid_json_is_50109_and_a_non_object_body_is_50035(client, make):
    alice = make.actor()
    headers = {**alice.headers, "Content-Type": "application/json"}
    error(client.post("/api/v10/guilds", data=b'{"name": "broken', headers=headers), 400, 50109)
    assert field_error_codes(client.post("/api/v10/guilds", json=["a list"], headers=alice.headers)) == [
        "DICT_TYPE_CONVERT"]
    text = {**alice.headers, "Content-Type": "text/plain"}
    assert field_error_codes(client.post("/api/v10/guilds", data=b"name=x", headers=text)) == ["CONTENT_TYPE_INVALID"]


def test_form_encoded_guild_body_is_accepted(client, make):
    alice = make.actor()
    guild = json_body(client.post("/api/v10/guilds", data={"name": "from a form"}, headers=alice.headers), 201)
    assert guild["name"] == "from a form"


def test_guild_channels_are_listed_by_position_then_id(client, make):
    alice = make.actor()
    guild_id, general_id = make.guild(alice)
    created = [json_body(client.post(f"/api/v10/guilds/{guild_id}/channels", json={"name": name},
                                     headers=alice.headers), 201)["id"] for name in ("second", "third")]
    channels = json_body(client.get(f"/api/v10/guilds/{guild_id}/channels", headers=alice.headers), 200)
    assert [c["id"] for c in channels] == [str(general_id), *created]
    assert [c["position"] for c in channels] == [0, 1, 2]
