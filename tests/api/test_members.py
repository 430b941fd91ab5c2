"""Guild members: PUT/GET/DELETE /guilds/{id}/members/{user_id}, GET /guilds/{id}/members and member roles."""
import base64
from datetime import timedelta

import gevent
import pytest

from app.auth.permissions import Permission
from app.auth.tokens import issue_access_token, revoke_token
from tests.support.responses import error, field_error_codes, json_body, no_content

MANAGE_ROLES, KICK = int(Permission.MANAGE_ROLES), int(Permission.KICK_MEMBERS)


def member_url(guild_id, user_id):
    return f"/api/v10/guilds/{guild_id}/members/{user_id}"


def test_owner_adds_a_member_201_then_204_when_already_there(client, make):
    owner, bob = make.actor(), make.actor("bob")
    guild_id, _ = make.guild(owner)
    role_id = make.role(guild_id)
    consent = make.grant(bob, owner)
    member = json_body(client.put(member_url(guild_id, bob.id), headers=owner.headers,
                                  json={"access_token": consent, "nick": "bobby", "roles": [str(role_id)]}), 201)
    assert member["user"] == {
        "id": str(bob.id), "username": "bob", "discriminator": "0", "global_name": None, "avatar": None, "bot": True,
        "public_flags": 0, "flags": 0}
    assert (member["nick"], member["roles"], member["flags"], member["deaf"], member["mute"]) == (
        "bobby", [str(role_id)], 0, False, False)
    assert member["joined_at"].endswith("+00:00") and member["communication_disabled_until"] is None
    no_content(client.put(member_url(guild_id, bob.id), json={"access_token": consent, "nick": "ignored"},
                          headers=owner.headers))
    assert json_body(client.get(member_url(guild_id, bob.id), headers=owner.headers), 200) == member


def test_adding_a_member_needs_their_consent_to_the_caller_with_guilds_join(client, make, resources):
    owner, bob, other_bot, carol = make.actor(), make.actor(), make.actor(), make.actor()
    guild_id, _ = make.guild(owner)
    refused = [
        "not-a-token", "MTIz.secret", make.grant(bob, owner) + "x",  # malformed, unknown id, wrong secret
        make.grant(carol, owner),  # another user's consent
        make.grant(bob, other_bot),  # bob's consent, but to another bot
        make.grant(bob, owner, lifetime=timedelta(seconds=-1)),  # expired
        make.actor().token,  # an API token is no consent
    ]
    revoked = make.grant(bob, owner)
    with resources.session() as session:
        assert revoke_token(session, int(base64.urlsafe_b64decode(revoked.split(".")[0] + "==")))
        session.commit()
    refused.append(revoked)
    for token in refused:
        error(client.put(member_url(guild_id, bob.id), json={"access_token": token}, headers=owner.headers),
              403, 50025)
        error(client.get(member_url(guild_id, bob.id), headers=owner.headers), 404, 10007)
    json_body(client.put(member_url(guild_id, bob.id), json={"access_token": make.grant(bob, owner)},
                         headers=owner.headers), 201)


def test_an_access_token_carries_only_the_scopes_the_service_checks():
    with pytest.raises(ValueError, match="scopes must be some of guilds.join"):
        issue_access_token(None, 1, 2, 3, ("guilds.join", "email"))
    with pytest.raises(ValueError, match="got none"):
        issue_access_token(None, 1, 2, 3, ())


def test_adding_members_needs_the_owner_or_manage_guild(client, make):
    owner, plain, manager, newcomer = make.actor(), make.actor(), make.actor(), make.actor()
    guild_id, _ = make.guild(owner)
    make.member(guild_id, plain)
    make.member(guild_id, manager, roles=[make.role(guild_id, permissions=Permission.MANAGE_GUILD)])
    error(client.put(member_url(guild_id, newcomer.id), json={"access_token": make.grant(newcomer, plain)},
                     headers=plain.headers), 403, 50013)
    error(client.get(member_url(guild_id, newcomer.id), headers=owner.headers), 404, 10007)
    json_body(client.put(member_url(guild_id, newcomer.id), json={"access_token": make.grant(newcomer, manager)},
                         headers=manager.headers), 201)
    json_body(client.get(member_url(guild_id, newcomer.id), headers=newcomer.headers), 200)


def test_adding_with_roles_also_needs_manage_roles_over_those_roles(client, make):
    owner, manager, newcomer = make.actor(), make.actor(), make.actor()
    guild_id, _ = make.guild(owner)
    role_id = make.role(guild_id, position=3)
    make.member(guild_id, manager, roles=[make.role(guild_id, permissions=Permission.MANAGE_GUILD, position=1)])
    error(client.put(member_url(guild_id, newcomer.id), headers=manager.headers,
                     json={"roles": [role_id], "access_token": make.grant(newcomer, manager)}), 403, 50013)
    error(client.get(member_url(guild_id, newcomer.id), headers=owner.headers), 404, 10007)


def test_add_member_errors(client, make):
    owner, stranger, bob = make.actor(), make.actor(), make.actor()
    guild_id, _ = make.guild(owner)
    other_guild, _ = make.guild(stranger)
    consent = make.grant(bob, owner)
    # No user 4242 granted anything: the token is not theirs.
    error(client.put(member_url(guild_id, 4242), json={"access_token": consent}, headers=owner.headers), 403, 50025)
    error(client.put(member_url(4242, bob.id), json={"access_token": consent}, headers=owner.headers), 404, 10004)
    error(client.put(member_url(guild_id, bob.id), json={"access_token": make.grant(bob, stranger)},
                     headers=stranger.headers), 403, 50001)
    error(client.put(member_url(guild_id, bob.id), json={"access_token": consent, "roles": [make.role(other_guild)]},
                     headers=owner.headers), 404, 10011)
    assert field_error_codes(client.put(member_url(guild_id, bob.id), json={"access_token": consent, "nick": "n" * 33},
                                        headers=owner.headers), "nick") == ["BASE_TYPE_MAX_LENGTH"]
    assert field_error_codes(client.put(member_url(guild_id, bob.id), json={"access_token": consent, "roles": ["x"]},
                                        headers=owner.headers), "roles", "0") == ["NUMBER_TYPE_COERCE"]
    assert field_error_codes(client.put(member_url(guild_id, bob.id), json={}, headers=owner.headers),
                             "access_token") == ["BASE_TYPE_REQUIRED"]
    assert field_error_codes(client.put(member_url(guild_id, "me"), headers=owner.headers),
                             "user_id") == ["NUMBER_TYPE_COERCE"]
    error(client.get(member_url(guild_id, bob.id), headers=owner.headers), 404, 10007)


def test_get_member_is_for_members_only(client, make):
    owner, stranger = make.actor(), make.actor()
    guild_id, _ = make.guild(owner)
    error(client.get(member_url(guild_id, owner.id), headers=stranger.headers), 403, 50001)
    error(client.get(member_url(4242, owner.id), headers=owner.headers), 404, 10004)


def test_member_list_defaults_to_one_and_pages_ascending_by_user_id(client, make):
    owner = make.actor()
    guild_id, _ = make.guild(owner)
    others = [make.actor() for _ in range(4)]
    for actor in reversed(others):
        make.member(guild_id, actor)
    every_id = sorted(str(a.id) for a in [owner, *others])

    first = json_body(client.get(f"/api/v10/guilds/{guild_id}/members", headers=owner.headers), 200)
    assert [m["user"]["id"] for m in first] == every_id[:1]
    everyone = json_body(client.get(f"/api/v10/guilds/{guild_id}/members?limit=1000", headers=owner.headers), 200)
    assert [m["user"]["id"] for m in everyone] == every_id

    # discord.py's fetch_members: after = the last user id of the previous page.
    seen, after = [], 0
    while True:
        page = json_body(client.get(f"/api/v10/guilds/{guild_id}/members?limit=2&after={after}",
                                    headers=owner.headers), 200)
        seen += [m["user"]["id"] for m in page]
        if len(page) < 2:
            break
        after = page[-1]["user"]["id"]
    assert seen == every_id


def test_member_list_shows_each_members_roles(client, make):
    owner, bob = make.actor(), make.actor()
    guild_id, _ = make.guild(owner)
    first, second = make.role(guild_id), make.role(guild_id)
    make.member(guild_id, bob, roles=[second, first])
    members = json_body(client.get(f"/api/v10/guilds/{guild_id}/members?limit=10", headers=owner.headers), 200)
    roles = {m["user"]["id"]: m["roles"] for m in members}
    assert roles == {str(owner.id): [], str(bob.id): sorted([str(first), str(second)], key=int)}


@pytest.mark.parametrize("query, field, code", [
    ("limit=0", "limit", "NUMBER_TYPE_MIN"),
    ("limit=1001", "limit", "NUMBER_TYPE_MAX"),
    ("limit=ten", "limit", "NUMBER_TYPE_COERCE"),
    ("limit=1.5", "limit", "NUMBER_TYPE_COERCE"),
    ("after=abc", "after", "NUMBER_TYPE_COERCE"),
    (f"after={2**64}", "after", "NUMBER_TYPE_COERCE"),
])
def test_member_list_rejects_bad_queries(client, make, query, field, code):
    owner = make.actor()
    guild_id, _ = make.guild(owner)
    response = client.get(f"/api/v10/guilds/{guild_id}/members?{query}", headers=owner.headers)
    assert field_error_codes(response, field) == [code]


def test_member_list_is_for_members_only(client, make):
    owner, stranger = make.actor(), make.actor()
    guild_id, _ = make.guild(owner)
    error(client.get(f"/api/v10/guilds/{guild_id}/members", headers=stranger.headers), 403, 50001)
    error(client.get("/api/v10/guilds/4242/members", headers=owner.headers), 404, 10004)


def test_kicking_needs_kick_members_and_a_higher_role(client, make):
    owner, kicker, peer, junior, plain = (make.actor() for _ in range(5))
    guild_id, _ = make.guild(owner)
    moderators = make.role(guild_id, permissions=KICK, position=2)
    make.member(guild_id, kicker, roles=[moderators])
    make.member(guild_id, peer, roles=[moderators])
    make.member(guild_id, junior, roles=[make.role(guild_id, position=1)])
    make.member(guild_id, plain)
    error(client.delete(member_url(guild_id, junior.id), headers=plain.headers), 403, 50013)
    error(client.delete(member_url(guild_id, peer.id), headers=kicker.headers), 403, 50013)
    error(client.delete(member_url(guild_id, owner.id), headers=kicker.headers), 403, 50013)
    no_content(client.delete(member_url(guild_id, junior.id), headers=kicker.headers))
    no_content(client.delete(member_url(guild_id, peer.id), headers=owner.headers))
    for gone in (junior, peer):
        error(client.get(member_url(guild_id, gone.id), headers=owner.headers), 404, 10007)
    error(client.delete(member_url(guild_id, junior.id), headers=owner.headers), 404, 10007)
    error(client.get(f"/api/v10/guilds/{guild_id}", headers=junior.headers), 403, 50001)


def test_a_member_may_leave_but_the_owner_may_not(client, make):
    owner, bob = make.actor(), make.actor()
    guild_id, _ = make.guild(owner)
    make.member(guild_id, bob)
    no_content(client.delete(member_url(guild_id, bob.id), headers=bob.headers))
    error(client.get(f"/api/v10/guilds/{guild_id}", headers=bob.headers), 403, 50001)
    error(client.delete(member_url(guild_id, owner.id), headers=owner.headers), 403, 50013)


def test_a_member_who_left_and_rejoined_has_no_old_roles(client, make):
    owner, bob = make.actor(), make.actor()
    guild_id, _ = make.guild(owner)
    make.member(guild_id, bob, roles=[make.role(guild_id)])
    no_content(client.delete(member_url(guild_id, bob.id), headers=owner.headers))
    assert json_body(client.put(member_url(guild_id, bob.id), json={"access_token": make.grant(bob, owner)},
                                headers=owner.headers), 201)["roles"] == []


def test_member_roles_are_added_and_removed_idempotently(client, make):
    owner, bob = make.actor(), make.actor()
    guild_id, _ = make.guild(owner)
    make.member(guild_id, bob)
    role_id = make.role(guild_id)
    url = f"{member_url(guild_id, bob.id)}/roles/{role_id}"
    for _ in range(2):
        no_content(client.put(url, headers=owner.headers))
        assert json_body(client.get(member_url(guild_id, bob.id), headers=owner.headers), 200)["roles"] == [
            str(role_id)]
    for _ in range(2):
        no_content(client.delete(url, headers=owner.headers))
        assert json_body(client.get(member_url(guild_id, bob.id), headers=owner.headers), 200)["roles"] == []


def test_member_role_changes_need_manage_roles_above_the_role(client, make):
    owner, manager, plain, bob = make.actor(), make.actor(), make.actor(), make.actor()
    guild_id, _ = make.guild(owner)
    make.member(guild_id, manager, roles=[make.role(guild_id, permissions=MANAGE_ROLES, position=2)])
    make.member(guild_id, plain)
    make.member(guild_id, bob)
    lower, higher = make.role(guild_id, position=1), make.role(guild_id, position=3)
    error(client.put(f"{member_url(guild_id, bob.id)}/roles/{lower}", headers=plain.headers), 403, 50013)
    error(client.put(f"{member_url(guild_id, bob.id)}/roles/{higher}", headers=manager.headers), 403, 50013)
    no_content(client.put(f"{member_url(guild_id, bob.id)}/roles/{lower}", headers=manager.headers))
    assert json_body(client.get(member_url(guild_id, bob.id), headers=owner.headers), 200)["roles"] == [str(lower)]


def test_member_role_errors(client, make):
    owner, bob, stranger = make.actor(), make.actor(), make.actor()
    guild_id, _ = make.guild(owner)
    make.member(guild_id, bob)
    role_id = make.role(guild_id)
    error(client.put(f"{member_url(guild_id, bob.id)}/roles/4242", headers=owner.headers), 404, 10011)
    error(client.put(f"{member_url(guild_id, bob.id)}/roles/{guild_id}", headers=owner.headers), 404, 10011)
    error(client.put(f"{member_url(guild_id, stranger.id)}/roles/{role_id}", headers=owner.headers), 404, 10007)
    error(client.delete(f"{member_url(guild_id, bob.id)}/roles/{role_id}", headers=stranger.headers), 403, 50001)
    error(client.put(f"{member_url(4242, bob.id)}/roles/{role_id}", headers=owner.headers), 404, 10004)
    assert field_error_codes(client.put(f"{member_url(guild_id, bob.id)}/roles/mods", headers=owner.headers),
                             "role_id") == ["NUMBER_TYPE_COERCE"]


def test_identical_puts_racing_all_succeed(client, make):
    owner, bob = make.actor(), make.actor()
    guild_id, _ = make.guild(owner)
    role_id = make.role(guild_id)
    consent = {"access_token": make.grant(bob, owner)}
    racing = [gevent.spawn(client.put, member_url(guild_id, bob.id), json=consent, headers=owner.headers)
              for _ in range(4)]
    gevent.joinall(racing, raise_error=True)
    assert sorted(g.value.status_code for g in racing) == [201, 204, 204, 204]
    racing = [gevent.spawn(client.put, f"{member_url(guild_id, bob.id)}/roles/{role_id}", headers=owner.headers)
              for _ in range(4)]
    gevent.joinall(racing, raise_error=True)
    assert [g.value.status_code for g in racing] == [204] * 4
    assert json_body(client.get(member_url(guild_id, bob.id), headers=owner.headers), 200)["roles"] == [str(role_id)]
