"""PUT/DELETE /channels/{id}/permissions/{overwrite_id}, and what overwrites do to access."""
import gevent
import pytest

from app.auth.permissions import Permission
from tests.support.responses import error, field_error_codes, json_body, no_content

ROLE, MEMBER = 0, 1
VIEW, SEND = int(Permission.VIEW_CHANNEL), int(Permission.SEND_MESSAGES)


def put_overwrite(client, actor, channel_id, target_id, body):
    return client.put(f"/api/v10/channels/{channel_id}/permissions/{target_id}", json=body, headers=actor.headers)


def overwrites_of(client, actor, channel_id):
    channel = json_body(client.get(f"/api/v10/channels/{channel_id}", headers=actor.headers), 200)
    return {o["id"]: o for o in channel["permission_overwrites"]}


def test_put_creates_then_replaces_an_overwrite_in_wire_form(client, make):
    owner = make.actor()
    guild_id, channel_id = make.guild(owner)
    role = make.role(guild_id)
    no_content(put_overwrite(client, owner, channel_id, role, {"type": ROLE, "allow": str(SEND), "deny": "0"}))
    assert overwrites_of(client, owner, channel_id) == {
        str(role): {"id": str(role), "type": ROLE, "allow": str(SEND), "deny": "0"}}
    # discord.py sends the bit sets as integers; a second PUT replaces both sets rather than merging them.
    no_content(put_overwrite(client, owner, channel_id, role, {"type": ROLE, "allow": 0, "deny": VIEW}))
    assert overwrites_of(client, owner, channel_id)[str(role)] == {
        "id": str(role), "type": ROLE, "allow": "0", "deny": str(VIEW)}


def test_omitted_or_null_bit_sets_mean_none(client, make):
    owner, bob = make.actor(), make.actor()
    guild_id, channel_id = make.guild(owner)
    make.member(guild_id, bob)
    no_content(put_overwrite(client, owner, channel_id, bob.id, {"type": MEMBER, "allow": None}))
    assert overwrites_of(client, owner, channel_id)[str(bob.id)] == {
        "id": str(bob.id), "type": MEMBER, "allow": "0", "deny": "0"}


def test_everyone_deny_hides_the_channel_and_a_member_overwrite_brings_it_back(client, make):
    owner, bob, carol = make.actor(), make.actor(), make.actor()
    guild_id, channel_id = make.guild(owner)
    make.member(guild_id, bob)
    make.member(guild_id, carol)
    json_body(client.get(f"/api/v10/channels/{channel_id}", headers=bob.headers), 200)
    no_content(put_overwrite(client, owner, channel_id, guild_id, {"type": ROLE, "deny": VIEW}))
    error(client.get(f"/api/v10/channels/{channel_id}", headers=bob.headers), 403, 50001)
    no_content(put_overwrite(client, owner, channel_id, bob.id, {"type": MEMBER, "allow": VIEW}))
    json_body(client.get(f"/api/v10/channels/{channel_id}", headers=bob.headers), 200)
    error(client.get(f"/api/v10/channels/{channel_id}", headers=carol.headers), 403, 50001)
    json_body(client.get(f"/api/v10/channels/{channel_id}", headers=owner.headers), 200)


def test_role_overwrite_allow_beats_everyone_deny(client, make):
    owner, bob = make.actor(), make.actor()
    guild_id, channel_id = make.guild(owner)
    staff = make.role(guild_id)
    make.member(guild_id, bob, roles=[staff])
    make.overwrite(channel_id, guild_id, ROLE, deny=VIEW)
    error(client.get(f"/api/v10/channels/{channel_id}", headers=bob.headers), 403, 50001)
    no_content(put_overwrite(client, owner, channel_id, staff, {"type": ROLE, "allow": VIEW}))
    json_body(client.get(f"/api/v10/channels/{channel_id}", headers=bob.headers), 200)


def test_delete_removes_the_overwrite_and_restores_access(client, make):
    owner, bob = make.actor(), make.actor()
    guild_id, channel_id = make.guild(owner)
    make.member(guild_id, bob)
    make.overwrite(channel_id, bob.id, MEMBER, deny=VIEW)
    error(client.get(f"/api/v10/channels/{channel_id}", headers=bob.headers), 403, 50001)
    no_content(client.delete(f"/api/v10/channels/{channel_id}/permissions/{bob.id}", headers=owner.headers))
    assert overwrites_of(client, owner, channel_id) == {}
    json_body(client.get(f"/api/v10/channels/{channel_id}", headers=bob.headers), 200)
    error(client.delete(f"/api/v10/channels/{channel_id}/permissions/{bob.id}", headers=owner.headers), 404, 10009)


def test_managing_overwrites_needs_manage_roles_and_only_grants_held_bits(client, make):
    owner, plain, manager = make.actor(), make.actor(), make.actor()
    guild_id, channel_id = make.guild(owner)
    make.member(guild_id, plain)
    make.member(guild_id, manager, roles=[make.role(guild_id, permissions=Permission.MANAGE_ROLES)])
    error(put_overwrite(client, plain, channel_id, guild_id, {"type": ROLE, "deny": SEND}), 403, 50013)
    error(client.delete(f"/api/v10/channels/{channel_id}/permissions/{guild_id}", headers=plain.headers), 403, 50013)
    no_content(put_overwrite(client, manager, channel_id, guild_id, {"type": ROLE, "deny": SEND}))
    error(put_overwrite(client, manager, channel_id, guild_id, {"type": ROLE, "allow": int(Permission.BAN_MEMBERS)}),
          403, 50013)
    assert overwrites_of(client, owner, channel_id)[str(guild_id)]["deny"] == str(SEND)


def test_overwrites_on_unknown_or_invisible_channels(client, make):
    owner, stranger, bob = make.actor(), make.actor(), make.actor()
    guild_id, channel_id = make.guild(owner)
    make.member(guild_id, bob, roles=[make.role(guild_id, permissions=Permission.MANAGE_ROLES)])
    make.overwrite(channel_id, bob.id, MEMBER, deny=VIEW)
    error(put_overwrite(client, owner, 4242, guild_id, {"type": ROLE}), 404, 10003)
    error(put_overwrite(client, stranger, channel_id, guild_id, {"type": ROLE}), 403, 50001)
    error(put_overwrite(client, bob, channel_id, guild_id, {"type": ROLE}), 403, 50001)


def test_overwrite_target_must_be_a_role_or_member_of_the_guild(client, make):
    owner, outsider = make.actor(), make.actor()
    guild_id, channel_id = make.guild(owner)
    error(put_overwrite(client, owner, channel_id, outsider.id, {"type": MEMBER}), 400, 50035)
    error(put_overwrite(client, owner, channel_id, 4242, {"type": ROLE}), 400, 50035)
    assert overwrites_of(client, owner, channel_id) == {}


@pytest.mark.parametrize("body, field, code", [
    ({}, "type", "BASE_TYPE_REQUIRED"),
    ({"type": 2}, "type", "BASE_TYPE_CHOICES"),
    ({"type": "role"}, "type", "BASE_TYPE_CHOICES"),
    ({"type": 0, "allow": "lots"}, "allow", "BASE_TYPE_BAD"),
    ({"type": 0, "deny": -1}, "deny", "BASE_TYPE_BAD"),
    ({"type": 0, "allow": str(2**64)}, "allow", "BASE_TYPE_BAD"),
    ({"type": 0, "allow": True}, "allow", "BASE_TYPE_BAD"),
])
def test_invalid_overwrite_body_is_a_nested_form_error(client, make, body, field, code):
    owner = make.actor()
    guild_id, channel_id = make.guild(owner)
    assert field_error_codes(put_overwrite(client, owner, channel_id, guild_id, body), field) == [code]


def test_non_snowflake_ids_in_the_path_are_form_errors(client, make):
    owner = make.actor()
    guild_id, channel_id = make.guild(owner)
    response = put_overwrite(client, owner, channel_id, "everyone", {"type": ROLE})
    assert field_error_codes(response, "overwrite_id") == ["NUMBER_TYPE_COERCE"]
    response = client.delete(f"/api/v10/channels/x/permissions/{guild_id}", headers=owner.headers)
    assert field_error_codes(response, "channel_id") == ["NUMBER_TYPE_COERCE"]


def test_identical_puts_racing_all_succeed_and_one_of_them_wins(client, make):
    owner, bob = make.actor(), make.actor()
    guild_id, channel_id = make.guild(owner)
    make.member(guild_id, bob)
    bodies = [{"type": MEMBER, "allow": bit} for bit in (VIEW, SEND, VIEW | SEND, 0)]
    racing = [gevent.spawn(put_overwrite, client, owner, channel_id, bob.id, body) for body in bodies]
    gevent.joinall(racing, raise_error=True)
    assert [g.value.status_code for g in racing] == [204] * 4
    assert overwrites_of(client, owner, channel_id)[str(bob.id)]["allow"] in {str(b["allow"]) for b in bodies}
