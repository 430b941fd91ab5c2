"""POST /guilds/{id}/channels and GET/PATCH/DELETE /channels/{id}, with Discord's permission checks."""
import pytest

from app.auth.permissions import Permission
from tests.support.responses import error, field_error_codes, json_body

ROLE, MEMBER = 0, 1


def create_channel(client, actor, guild_id, body):
    return client.post(f"/api/v10/guilds/{guild_id}/channels", json=body, headers=actor.headers)


def by_target(overwrites):
    """Overwrites in a fixed order: Discord does not promise one."""
    return sorted(overwrites, key=lambda overwrite: int(overwrite["id"]))


def test_created_text_channel_echoes_its_fields_in_wire_form(client, make):
    alice, bob = make.actor(), make.actor()
    guild_id, _ = make.guild(alice)
    make.member(guild_id, bob)
    mods = make.role(guild_id, permissions=0)
    # discord.py sends overwrite ids and bit sets as JSON integers; they come back as strings.
    channel = json_body(create_channel(client, alice, guild_id, {
        "name": "news", "type": 0, "topic": "what happened", "nsfw": True, "rate_limit_per_user": 30,
        "permission_overwrites": [
            {"id": guild_id, "type": ROLE, "allow": 0, "deny": int(Permission.SEND_MESSAGES)},
            {"id": str(mods), "type": ROLE, "allow": str(int(Permission.SEND_MESSAGES))},
            {"id": bob.id, "type": MEMBER, "allow": None, "deny": None},
        ],
    }), 201)
    assert channel["id"].isdigit() and channel["guild_id"] == str(guild_id)
    assert (channel["name"], channel["type"], channel["topic"], channel["nsfw"], channel["rate_limit_per_user"]) == (
        "news", 0, "what happened", True, 30)
    assert channel["last_message_id"] is None and channel["parent_id"] is None
    assert by_target(channel["permission_overwrites"]) == by_target([
        {"id": str(guild_id), "type": ROLE, "allow": "0", "deny": str(int(Permission.SEND_MESSAGES))},
        {"id": str(mods), "type": ROLE, "allow": str(int(Permission.SEND_MESSAGES)), "deny": "0"},
        {"id": str(bob.id), "type": MEMBER, "allow": "0", "deny": "0"},
    ])
    fetched = json_body(client.get(f"/api/v10/channels/{channel['id']}", headers=alice.headers), 200)
    assert by_target(fetched.pop("permission_overwrites")) == by_target(channel.pop("permission_overwrites"))
    assert fetched == channel


def test_voice_channel_carries_voice_fields_and_categories_parent_channels(client, make):
    alice = make.actor()
    guild_id, _ = make.guild(alice)
    category = json_body(create_channel(client, alice, guild_id, {"name": "Voice", "type": 4}), 201)
    voice = json_body(create_channel(client, alice, guild_id, {"name": "lounge", "type": 2,
                                                                "parent_id": category["id"]}), 201)
    assert (voice["type"], voice["parent_id"], voice["bitrate"], voice["user_limit"]) == (2, category["id"], 64000, 0)
    assert "topic" not in category


def test_parent_must_be_a_category_of_the_same_guild(client, make):
    alice = make.actor()
    guild_id, general_id = make.guild(alice)
    for parent in (general_id, 4242):
        response = create_channel(client, alice, guild_id, {"name": "orphan", "parent_id": parent})
        assert field_error_codes(response, "parent_id") == ["CHANNEL_PARENT_INVALID"]


def test_creating_a_channel_needs_manage_channels(client, make):
    owner, plain, manager, admin, stranger = (make.actor() for _ in range(5))
    guild_id, _ = make.guild(owner)
    make.member(guild_id, plain)
    make.member(guild_id, manager, roles=[make.role(guild_id, permissions=Permission.MANAGE_CHANNELS)])
    make.member(guild_id, admin, roles=[make.role(guild_id, permissions=Permission.ADMINISTRATOR)])
    error(create_channel(client, plain, guild_id, {"name": "nope"}), 403, 50013)
    error(create_channel(client, stranger, guild_id, {"name": "nope"}), 403, 50001)
    error(create_channel(client, owner, 4242, {"name": "nope"}), 404, 10004)
    for actor in (owner, manager, admin):
        json_body(create_channel(client, actor, guild_id, {"name": f"by-{actor.id}"}), 201)
    names = [c["name"] for c in json_body(client.get(f"/api/v10/guilds/{guild_id}/channels", headers=plain.headers),
                                          200)]
    assert "nope" not in names and len(names) == 4


def test_overwrites_may_only_grant_what_the_creator_holds(client, make):
    owner, manager = make.actor(), make.actor()
    guild_id, _ = make.guild(owner, everyone=int(Permission.VIEW_CHANNEL))
    make.member(guild_id, manager, roles=[make.role(
        guild_id, permissions=Permission.MANAGE_CHANNELS | Permission.MANAGE_ROLES | Permission.SEND_MESSAGES)])
    held = {"id": guild_id, "type": ROLE, "deny": int(Permission.SEND_MESSAGES)}
    json_body(create_channel(client, manager, guild_id, {"name": "ok", "permission_overwrites": [held]}), 201)
    not_held = {"id": guild_id, "type": ROLE, "allow": int(Permission.KICK_MEMBERS)}
    error(create_channel(client, manager, guild_id, {"name": "no", "permission_overwrites": [not_held]}), 403, 50013)
    # MANAGE_ROLES in an overwrite is for administrators only, even for a holder of MANAGE_ROLES.
    manage_roles = {"id": guild_id, "type": ROLE, "allow": int(Permission.MANAGE_ROLES)}
    error(create_channel(client, manager, guild_id, {"name": "no", "permission_overwrites": [manage_roles]}),
          403, 50013)
    json_body(create_channel(client, owner, guild_id, {"name": "yes", "permission_overwrites": [manage_roles]}), 201)


def test_overwrite_targets_must_exist_in_the_guild(client, make):
    alice, outsider = make.actor(), make.actor()
    guild_id, _ = make.guild(alice)
    other_guild, _ = make.guild(outsider)
    foreign_role = make.role(other_guild)
    response = create_channel(client, alice, guild_id, {"name": "x", "permission_overwrites": [
        {"id": guild_id, "type": ROLE}, {"id": foreign_role, "type": ROLE}]})
    assert field_error_codes(response, "permission_overwrites", "1", "id") == ["UNKNOWN_ROLE"]
    response = create_channel(client, alice, guild_id, {"name": "x", "permission_overwrites": [
        {"id": outsider.id, "type": MEMBER}]})
    assert field_error_codes(response, "permission_overwrites", "0", "id") == ["UNKNOWN_MEMBER"]


@pytest.mark.parametrize("body, path, code", [
    ({}, ("name",), "BASE_TYPE_REQUIRED"),
    ({"name": ""}, ("name",), "BASE_TYPE_MIN_LENGTH"),
    ({"name": "x" * 101}, ("name",), "BASE_TYPE_MAX_LENGTH"),
    ({"name": "x", "type": 1}, ("type",), "BASE_TYPE_CHOICES"),
    ({"name": "x", "topic": "t" * 1025}, ("topic",), "BASE_TYPE_MAX_LENGTH"),
    ({"name": "x", "rate_limit_per_user": 21601}, ("rate_limit_per_user",), "NUMBER_TYPE_MAX"),
    ({"name": "x", "position": -1}, ("position",), "NUMBER_TYPE_MIN"),
    ({"name": "x", "position": 2**40}, ("position",), "NUMBER_TYPE_MAX"),
    ({"name": "x", "nsfw": "maybe"}, ("nsfw",), "BOOLEAN_TYPE_COERCE"),
    ({"name": "x", "parent_id": "abc"}, ("parent_id",), "NUMBER_TYPE_COERCE"),
    ({"name": "x", "permission_overwrites": {"id": 1}}, ("permission_overwrites",), "BASE_TYPE_ARRAY"),
    ({"name": "x", "permission_overwrites": [{"id": "abc", "type": 0}]},
     ("permission_overwrites", "0", "id"), "NUMBER_TYPE_COERCE"),
    ({"name": "x", "permission_overwrites": [{"id": 1}]}, ("permission_overwrites", "0", "type"), "BASE_TYPE_REQUIRED"),
])
def test_invalid_channel_body_is_a_nested_form_error(client, make, body, path, code):
    alice = make.actor()
    guild_id, _ = make.guild(alice)
    assert code in field_error_codes(create_channel(client, alice, guild_id, body), *path)


def test_get_channel_unknown_is_10003_and_outside_the_guild_is_50001(client, make):
    alice, stranger = make.actor(), make.actor()
    guild_id, general_id = make.guild(alice)
    error(client.get("/api/v10/channels/4242", headers=alice.headers), 404, 10003)
    error(client.get(f"/api/v10/channels/{general_id}", headers=stranger.headers), 403, 50001)
    assert field_error_codes(client.get("/api/v10/channels/general", headers=alice.headers),
                             "channel_id") == ["NUMBER_TYPE_COERCE"]


def test_a_channel_hidden_by_overwrites_is_50001_for_members_but_not_owner_or_admin(client, make):
    owner, member, admin, allowed = make.actor(), make.actor(), make.actor(), make.actor()
    guild_id, _ = make.guild(owner)
    make.member(guild_id, member)
    make.member(guild_id, admin, roles=[make.role(guild_id, permissions=Permission.ADMINISTRATOR)])
    make.member(guild_id, allowed)
    hidden = make.channel(guild_id, "staff")
    make.overwrite(hidden, guild_id, ROLE, deny=Permission.VIEW_CHANNEL)
    make.overwrite(hidden, allowed.id, MEMBER, allow=Permission.VIEW_CHANNEL)
    error(client.get(f"/api/v10/channels/{hidden}", headers=member.headers), 403, 50001)
    error(client.patch(f"/api/v10/channels/{hidden}", json={"name": "x"}, headers=member.headers), 403, 50001)
    error(client.delete(f"/api/v10/channels/{hidden}", headers=member.headers), 403, 50001)
    for actor in (owner, admin, allowed):
        assert json_body(client.get(f"/api/v10/channels/{hidden}", headers=actor.headers), 200)["name"] == "staff"


def test_edit_channel_changes_only_the_fields_sent(client, make):
    alice = make.actor()
    guild_id, _ = make.guild(alice)
    channel = json_body(create_channel(client, alice, guild_id, {"name": "old", "topic": "keep me", "nsfw": True}),
                        201)
    edited = json_body(client.patch(f"/api/v10/channels/{channel['id']}", json={"name": "new", "position": 7},
                                    headers=alice.headers), 200)
    assert (edited["name"], edited["position"], edited["topic"], edited["nsfw"]) == ("new", 7, "keep me", True)
    cleared = json_body(client.patch(f"/api/v10/channels/{channel['id']}", json={"topic": None},
                                     headers=alice.headers), 200)
    assert cleared["topic"] is None and cleared["name"] == "new"
    assert json_body(client.get(f"/api/v10/channels/{channel['id']}", headers=alice.headers), 200) == cleared


def test_edit_channel_needs_manage_channels_which_a_channel_overwrite_can_grant(client, make):
    owner, member = make.actor(), make.actor()
    guild_id, general_id = make.guild(owner)
    helpers = make.role(guild_id)
    make.member(guild_id, member, roles=[helpers])
    error(client.patch(f"/api/v10/channels/{general_id}", json={"name": "mine"}, headers=member.headers), 403, 50013)
    make.overwrite(general_id, helpers, ROLE, allow=Permission.MANAGE_CHANNELS)
    edited = json_body(client.patch(f"/api/v10/channels/{general_id}", json={"name": "mine"},
                                    headers=member.headers), 200)
    assert edited["name"] == "mine"


def test_edit_channel_overwrites_need_manage_roles(client, make):
    owner, manager = make.actor(), make.actor()
    guild_id, general_id = make.guild(owner)
    make.member(guild_id, manager, roles=[make.role(guild_id, permissions=Permission.MANAGE_CHANNELS)])
    overwrites = [{"id": str(guild_id), "type": ROLE, "deny": str(int(Permission.SEND_MESSAGES))}]
    error(client.patch(f"/api/v10/channels/{general_id}", json={"permission_overwrites": overwrites},
                       headers=manager.headers), 403, 50013)
    edited = json_body(client.patch(f"/api/v10/channels/{general_id}", json={"permission_overwrites": overwrites},
                                    headers=owner.headers), 200)
    assert edited["permission_overwrites"] == [{**overwrites[0], "allow": "0"}]
    replaced = json_body(client.patch(f"/api/v10/channels/{general_id}", json={"permission_overwrites": []},
                                      headers=owner.headers), 200)
    assert replaced["permission_overwrites"] == []


def test_edit_channel_rejects_bad_bodies(client, make):
    alice = make.actor()
    guild_id, general_id = make.guild(alice)
    url = f"/api/v10/channels/{general_id}"
    assert field_error_codes(client.patch(url, json={"name": ""}, headers=alice.headers), "name") == [
        "BASE_TYPE_MIN_LENGTH"]
    assert field_error_codes(client.patch(url, json={"rate_limit_per_user": -1}, headers=alice.headers),
                             "rate_limit_per_user") == ["NUMBER_TYPE_MIN"]
    headers = {**alice.headers, "Content-Type": "application/json"}
    error(client.patch(url, data=b"{", headers=headers), 400, 50109)
    error(client.patch("/api/v10/channels/4242", json={"name": "x"}, headers=alice.headers), 404, 10003)


def test_delete_channel_returns_it_and_then_it_is_unknown(client, make):
    alice, member = make.actor(), make.actor()
    guild_id, _ = make.guild(alice)
    make.member(guild_id, member)
    channel_id = make.channel(guild_id, "doomed")
    make.overwrite(channel_id, guild_id, ROLE, deny=Permission.SEND_MESSAGES)
    error(client.delete(f"/api/v10/channels/{channel_id}", headers=member.headers), 403, 50013)
    deleted = json_body(client.delete(f"/api/v10/channels/{channel_id}", headers=alice.headers), 200)
    assert (deleted["id"], deleted["name"]) == (str(channel_id), "doomed")
    error(client.get(f"/api/v10/channels/{channel_id}", headers=alice.headers), 404, 10003)
    error(client.delete(f"/api/v10/channels/{channel_id}", headers=alice.headers), 404, 10003)
    listed = json_body(client.get(f"/api/v10/guilds/{guild_id}/channels", headers=alice.headers), 200)
    assert str(channel_id) not in [c["id"] for c in listed]


def test_edit_moves_a_channel_only_into_a_category_of_its_guild(client, make):
    alice, other = make.actor(), make.actor()
    guild_id, general_id = make.guild(alice)
    other_guild, _ = make.guild(other)
    category = make.channel(guild_id, "Text", type_=4)
    foreign_category = make.channel(other_guild, "Elsewhere", type_=4)
    url = f"/api/v10/channels/{general_id}"
    for parent in (4242, general_id, foreign_category):
        assert field_error_codes(client.patch(url, json={"parent_id": str(parent)}, headers=alice.headers),
                                 "parent_id") == ["CHANNEL_PARENT_INVALID"]
    assert json_body(client.get(url, headers=alice.headers), 200)["parent_id"] is None
    moved = json_body(client.patch(url, json={"parent_id": str(category)}, headers=alice.headers), 200)
    assert moved["parent_id"] == str(category)
    assert json_body(client.patch(url, json={"parent_id": None}, headers=alice.headers), 200)["parent_id"] is None


def test_deleting_a_category_leaves_its_channels_uncategorized(client, make):
    alice = make.actor()
    guild_id, _ = make.guild(alice)
    category = json_body(create_channel(client, alice, guild_id, {"name": "Old", "type": 4}), 201)
    child = json_body(create_channel(client, alice, guild_id, {"name": "kept", "parent_id": category["id"]}), 201)
    json_body(client.delete(f"/api/v10/channels/{category['id']}", headers=alice.headers), 200)
    assert json_body(client.get(f"/api/v10/channels/{child['id']}", headers=alice.headers), 200)["parent_id"] is None
