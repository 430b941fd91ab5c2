"""POST /guilds/{id}/roles, PATCH/DELETE /guilds/{id}/roles/{role_id}: MANAGE_ROLES and the role hierarchy."""
import pytest

from app.auth.permissions import Permission
from tests.support.responses import error, field_error_codes, json_body, no_content

MANAGE_ROLES, KICK = int(Permission.MANAGE_ROLES), int(Permission.KICK_MEMBERS)


def roles_of(client, actor, guild_id):
    """The guild's roles as {name: role}, read back through GET /guilds/{id}."""
    guild = json_body(client.get(f"/api/v10/guilds/{guild_id}", headers=actor.headers), 200)
    return {role["name"]: role for role in guild["roles"]}


def test_owner_creates_a_role_on_top_in_wire_form(client, make):
    owner = make.actor()
    guild_id, _ = make.guild(owner)
    make.role(guild_id, position=1, name="existing")
    role = json_body(client.post(f"/api/v10/guilds/{guild_id}/roles", json={
        "name": "mods", "permissions": str(KICK), "color": 0x3498DB, "hoist": True, "mentionable": True,
    }, headers=owner.headers), 200)
    assert role["id"].isdigit() and role["id"] != str(guild_id)
    assert (role["name"], role["permissions"], role["color"], role["hoist"], role["mentionable"]) == (
        "mods", str(KICK), 0x3498DB, True, True)
    assert role["colors"]["primary_color"] == 0x3498DB
    assert role["position"] == 2 and role["managed"] is False
    assert roles_of(client, owner, guild_id)["mods"] == role


def test_a_new_role_defaults_to_the_everyone_permissions(client, make):
    owner = make.actor()
    guild_id, _ = make.guild(owner, everyone=int(Permission.VIEW_CHANNEL))
    role = json_body(client.post(f"/api/v10/guilds/{guild_id}/roles", json={}, headers=owner.headers), 200)
    assert (role["name"], role["permissions"]) == ("new role", str(int(Permission.VIEW_CHANNEL)))
    role = json_body(client.post(f"/api/v10/guilds/{guild_id}/roles", json={"permissions": KICK},
                                 headers=owner.headers), 200)
    assert role["permissions"] == str(KICK)


def test_roles_need_manage_roles(client, make):
    owner, plain, stranger = make.actor(), make.actor(), make.actor()
    guild_id, _ = make.guild(owner)
    make.member(guild_id, plain)
    role_id = make.role(guild_id)
    error(client.post(f"/api/v10/guilds/{guild_id}/roles", json={}, headers=plain.headers), 403, 50013)
    error(client.patch(f"/api/v10/guilds/{guild_id}/roles/{role_id}", json={"name": "x"}, headers=plain.headers),
          403, 50013)
    error(client.delete(f"/api/v10/guilds/{guild_id}/roles/{role_id}", headers=plain.headers), 403, 50013)
    error(client.post(f"/api/v10/guilds/{guild_id}/roles", json={}, headers=stranger.headers), 403, 50001)
    error(client.post("/api/v10/guilds/4242/roles", json={}, headers=owner.headers), 404, 10004)
    assert set(roles_of(client, owner, guild_id)) == {"@everyone", "role"}


def test_a_manager_grants_only_permissions_they_hold(client, make):
    owner, manager = make.actor(), make.actor()
    guild_id, _ = make.guild(owner, everyone=0)
    make.member(guild_id, manager, roles=[make.role(guild_id, permissions=MANAGE_ROLES | KICK, position=5)])
    error(client.post(f"/api/v10/guilds/{guild_id}/roles", json={"permissions": int(Permission.BAN_MEMBERS)},
                      headers=manager.headers), 403, 50013)
    role = json_body(client.post(f"/api/v10/guilds/{guild_id}/roles", json={"permissions": KICK},
                                 headers=manager.headers), 200)
    url = f"/api/v10/guilds/{guild_id}/roles/{role['id']}"
    error(client.patch(url, json={"permissions": KICK | int(Permission.BAN_MEMBERS)}, headers=manager.headers),
          403, 50013)
    assert json_body(client.patch(url, json={"permissions": "0"}, headers=manager.headers), 200)["permissions"] == "0"


def test_a_manager_creates_below_their_top_role_and_cannot_touch_roles_at_or_above_it(client, make):
    owner, manager = make.actor(), make.actor()
    guild_id, _ = make.guild(owner)
    managers = make.role(guild_id, permissions=MANAGE_ROLES, position=1, name="managers")
    make.role(guild_id, position=2, name="admins")
    make.member(guild_id, manager, roles=[managers])
    created = json_body(client.post(f"/api/v10/guilds/{guild_id}/roles", json={"name": "helpers"},
                                    headers=manager.headers), 200)
    positions = {name: role["position"] for name, role in roles_of(client, owner, guild_id).items()}
    assert positions == {"@everyone": 0, "helpers": 1, "managers": 2, "admins": 3}

    roles = roles_of(client, owner, guild_id)
    for name in ("managers", "admins"):
        url = f"/api/v10/guilds/{guild_id}/roles/{roles[name]['id']}"
        error(client.patch(url, json={"name": "mine"}, headers=manager.headers), 403, 50013)
        error(client.delete(url, headers=manager.headers), 403, 50013)
    edited = json_body(client.patch(f"/api/v10/guilds/{guild_id}/roles/{created['id']}", json={"name": "aides"},
                                    headers=manager.headers), 200)
    assert edited["name"] == "aides"
    no_content(client.delete(f"/api/v10/guilds/{guild_id}/roles/{created['id']}", headers=manager.headers))


def test_administrators_are_still_bound_by_the_hierarchy_but_the_owner_is_not(client, make):
    owner, admin = make.actor(), make.actor()
    guild_id, _ = make.guild(owner)
    admins = make.role(guild_id, permissions=Permission.ADMINISTRATOR, position=1, name="admins")
    top = make.role(guild_id, position=2, name="top")
    make.member(guild_id, admin, roles=[admins])
    error(client.patch(f"/api/v10/guilds/{guild_id}/roles/{top}", json={"name": "x"}, headers=admin.headers),
          403, 50013)
    json_body(client.patch(f"/api/v10/guilds/{guild_id}/roles/{top}", json={"name": "x"}, headers=owner.headers), 200)


def test_edit_changes_only_the_fields_sent_and_everyone_keeps_its_name(client, make):
    owner = make.actor()
    guild_id, _ = make.guild(owner)
    role_id = make.role(guild_id, permissions=KICK, name="crew")
    url = f"/api/v10/guilds/{guild_id}/roles/{role_id}"
    edited = json_body(client.patch(url, json={"color": 255, "hoist": True}, headers=owner.headers), 200)
    assert (edited["name"], edited["permissions"], edited["color"], edited["hoist"]) == ("crew", str(KICK), 255, True)
    everyone = json_body(client.patch(f"/api/v10/guilds/{guild_id}/roles/{guild_id}", json={
        "name": "everybody", "permissions": str(int(Permission.VIEW_CHANNEL))}, headers=owner.headers), 200)
    assert (everyone["name"], everyone["permissions"]) == ("@everyone", str(int(Permission.VIEW_CHANNEL)))


def test_deleting_a_role_takes_it_off_its_members(client, make):
    owner, bob = make.actor(), make.actor()
    guild_id, _ = make.guild(owner)
    keep, drop = make.role(guild_id, name="keep"), make.role(guild_id, name="drop")
    make.member(guild_id, bob, roles=[keep, drop])
    no_content(client.delete(f"/api/v10/guilds/{guild_id}/roles/{drop}", headers=owner.headers))
    assert set(roles_of(client, owner, guild_id)) == {"@everyone", "keep"}
    member = json_body(client.get(f"/api/v10/guilds/{guild_id}/members/{bob.id}", headers=owner.headers), 200)
    assert member["roles"] == [str(keep)]
    error(client.delete(f"/api/v10/guilds/{guild_id}/roles/{drop}", headers=owner.headers), 404, 10011)


def test_unknown_foreign_and_everyone_roles(client, make):
    owner, other = make.actor(), make.actor()
    guild_id, _ = make.guild(owner)
    other_guild, _ = make.guild(other)
    foreign = make.role(other_guild)
    error(client.patch(f"/api/v10/guilds/{guild_id}/roles/4242", json={}, headers=owner.headers), 404, 10011)
    error(client.patch(f"/api/v10/guilds/{guild_id}/roles/{foreign}", json={"name": "x"}, headers=owner.headers),
          404, 10011)
    error(client.delete(f"/api/v10/guilds/{guild_id}/roles/{foreign}", headers=owner.headers), 404, 10011)
    error(client.delete(f"/api/v10/guilds/{guild_id}/roles/{guild_id}", headers=owner.headers), 400, 50035)
    assert field_error_codes(client.delete(f"/api/v10/guilds/{guild_id}/roles/top", headers=owner.headers),
                             "role_id") == ["NUMBER_TYPE_COERCE"]


@pytest.mark.parametrize("body, field, code", [
    ({"name": "x" * 101}, "name", "BASE_TYPE_MAX_LENGTH"),
    ({"color": -1}, "color", "NUMBER_TYPE_MIN"),
    ({"color": 0x1000000}, "color", "NUMBER_TYPE_MAX"),
    ({"color": "blue"}, "color", "NUMBER_TYPE_COERCE"),
    ({"hoist": "sometimes"}, "hoist", "BOOLEAN_TYPE_COERCE"),
    ({"permissions": "all"}, "permissions", "BASE_TYPE_BAD"),
    ({"permissions": -8}, "permissions", "BASE_TYPE_BAD"),
    ({"permissions": [8]}, "permissions", "BASE_TYPE_BAD"),
])
def test_invalid_role_body_is_a_nested_form_error(client, make, body, field, code):
    owner = make.actor()
    guild_id, _ = make.guild(owner)
    role_id = make.role(guild_id)
    assert field_error_codes(client.post(f"/api/v10/guilds/{guild_id}/roles", json=body, headers=owner.headers),
                             field) == [code]
    assert field_error_codes(client.patch(f"/api/v10/guilds/{guild_id}/roles/{role_id}", json=body,
                                          headers=owner.headers), field) == [code]


def test_permission_bits_beyond_the_known_set_are_refused_not_a_server_error(client, make):
    owner = make.actor()
    guild_id, _ = make.guild(owner)
    # 2**64 - 1 fits the wire format but not a signed 64-bit column; it must never reach the database.
    response = client.post(f"/api/v10/guilds/{guild_id}/roles", json={"permissions": str(2**64 - 1)},
                           headers=owner.headers)
    assert 400 <= response.status_code < 500 and response.headers["Content-Type"] == "application/json"
    assert set(roles_of(client, owner, guild_id)) == {"@everyone"}


def test_deleting_a_role_deletes_its_channel_overwrites(client, make):
    owner = make.actor()
    guild_id, channel_id = make.guild(owner)
    doomed, kept = make.role(guild_id, name="doomed"), make.role(guild_id, name="kept")
    make.overwrite(channel_id, doomed, 0, deny=Permission.SEND_MESSAGES)
    make.overwrite(channel_id, kept, 0, allow=Permission.SEND_MESSAGES)
    no_content(client.delete(f"/api/v10/guilds/{guild_id}/roles/{doomed}", headers=owner.headers))
    channel = json_body(client.get(f"/api/v10/channels/{channel_id}", headers=owner.headers), 200)
    assert [o["id"] for o in channel["permission_overwrites"]] == [str(kept)]
