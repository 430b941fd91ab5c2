"""Reactions: PUT/DELETE .../reactions/{emoji}/@me, DELETE .../{user_id}, GET .../reactions/{emoji}, clearing.

Emoji reach the URL the way discord.py sends them: ``urllib.parse.quote(emoji, safe='')``.
"""
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import quote

import pytest

from app.auth.permissions import Permission
from models import User
from tests.support.factories import Actor
from tests.support.responses import error, field_error_codes, json_body, no_content

MEMBER_PERMISSIONS = (Permission.VIEW_CHANNEL | Permission.SEND_MESSAGES | Permission.READ_MESSAGE_HISTORY
                      | Permission.ADD_REACTIONS)
FIRE, THUMBS_UP = "🔥", "👍"


@dataclass
class Room:
    """A guild channel, its owner, a member who may add reactions, a moderator (MANAGE_MESSAGES), a message."""

    owner: Actor
    member: Actor
    moderator: Actor
    guild_id: int
    channel_id: int
    message_id: str

    def url(self, emoji=None, *rest):
        url = f"/api/v10/channels/{self.channel_id}/messages/{self.message_id}/reactions"
        return "/".join([url, quote(emoji, safe=""), *rest]) if emoji is not None else url


@pytest.fixture
def room(client, make):
    owner, member, moderator = make.actor("owner"), make.actor("member"), make.actor("moderator")
    guild_id, channel_id = make.guild(owner, everyone=MEMBER_PERMISSIONS)
    make.member(guild_id, member)
    make.member(guild_id, moderator, roles=[make.role(guild_id, Permission.MANAGE_MESSAGES, name="moderators")])
    sent = client.post(f"/api/v10/channels/{channel_id}/messages", json={"content": "react to me"},
                       headers=owner.headers)
    return Room(owner, member, moderator, guild_id, channel_id, json_body(sent, 200)["id"])


def react(client, room, actor, emoji):
    return client.put(room.url(emoji, "@me"), headers=actor.headers)


def reactions_seen_by(client, room, actor):
    """The message's ``reactions`` as ``actor`` fetches it: (emoji name, emoji id, count, me) each."""
    response = client.get(f"/api/v10/channels/{room.channel_id}/messages/{room.message_id}", headers=actor.headers)
    return [(r["emoji"]["name"], r["emoji"]["id"], r["count"], r["me"])
            for r in json_body(response, 200).get("reactions", [])]


def reactor_ids(client, room, actor, emoji, **params):
    response = client.get(room.url(emoji), query_string=params, headers=actor.headers)
    return [int(u["id"]) for u in json_body(response, 200)]


# -- adding and the message object -------------------------------------------------------------------------

def test_unicode_reaction_shows_in_the_message_with_count_and_me(client, room):
    no_content(react(client, room, room.member, FIRE))
    no_content(react(client, room, room.member, FIRE))  # reacting twice is still one reaction
    no_content(react(client, room, room.owner, FIRE))
    assert quote(FIRE, safe="") == "%F0%9F%94%A5"
    assert reactions_seen_by(client, room, room.member) == [(FIRE, None, 2, True)]
    response = client.get(f"/api/v10/channels/{room.channel_id}/messages", headers=room.moderator.headers)
    [message] = json_body(response, 200)
    assert message["reactions"] == [{"count": 2, "count_details": {"burst": 0, "normal": 2}, "me": False,
                                     "me_burst": False, "emoji": {"id": None, "name": FIRE}, "burst_colors": []}]


def test_custom_emoji_in_every_form_discord_py_sends_is_one_reaction(client, room):
    for form, actor in (("party:1234567", room.member), (":party:1234567", room.owner),
                        ("a:party:1234567", room.moderator)):
        no_content(react(client, room, actor, form))
    assert reactions_seen_by(client, room, room.member) == [("party", "1234567", 3, True)]
    assert reactor_ids(client, room, room.owner, "party:1234567") == sorted(
        [room.member.id, room.owner.id, room.moderator.id])
    response = client.get(room.url(":party:1234567"), query_string={"limit": 1}, headers=room.owner.headers)
    first_reactor = min((room.member, room.owner, room.moderator), key=lambda actor: actor.id)
    assert json_body(response, 200) == [{
        "id": str(first_reactor.id), "username": first_reactor.user.username, "discriminator": "0",
        "global_name": None, "avatar": None, "bot": True, "public_flags": 0, "flags": 0}]


def test_emojis_are_listed_in_the_order_first_used(client, room):
    for emoji in (THUMBS_UP, "party:1234567", FIRE):
        no_content(react(client, room, room.member, emoji))
    no_content(react(client, room, room.owner, THUMBS_UP))
    assert reactions_seen_by(client, room, room.owner) == [
        (THUMBS_UP, None, 2, True), ("party", "1234567", 1, False), (FIRE, None, 1, False)]


def test_text_that_is_not_an_emoji_is_10014(client, room):
    for not_an_emoji in ("fire", "🔥🔥", "<:party:1234567>", "party:", ":1234567", "party:12x", "1",
                         f"party:{2**63}", "party:١٢"):
        error(react(client, room, room.member, not_an_emoji), 400, 10014)
        error(client.get(room.url(not_an_emoji), headers=room.member.headers), 400, 10014)
    assert reactions_seen_by(client, room, room.owner) == []


def test_reacting_to_an_unknown_message_is_10008(client, room):
    error(client.put(f"/api/v10/channels/{room.channel_id}/messages/4242/reactions/{quote(FIRE)}/@me",
                     headers=room.member.headers), 404, 10008)
    error(client.put(f"/api/v10/channels/4242/messages/{room.message_id}/reactions/{quote(FIRE)}/@me",
                     headers=room.member.headers), 404, 10003)


def test_add_reactions_is_needed_only_for_a_new_emoji(client, make, room):
    make.overwrite(room.channel_id, room.member.id, 1, deny=Permission.ADD_REACTIONS)
    error(react(client, room, room.member, FIRE), 403, 50013)
    assert reactions_seen_by(client, room, room.owner) == []
    no_content(react(client, room, room.owner, FIRE))
    no_content(react(client, room, room.member, FIRE))
    assert reactions_seen_by(client, room, room.member) == [(FIRE, None, 2, True)]


def test_reacting_needs_read_message_history(client, make, room):
    no_content(react(client, room, room.owner, FIRE))
    make.overwrite(room.channel_id, room.member.id, 1, deny=Permission.READ_MESSAGE_HISTORY)
    error(react(client, room, room.member, FIRE), 403, 50001)
    assert reactions_seen_by(client, room, room.owner) == [(FIRE, None, 1, True)]


def test_twenty_distinct_emojis_at_most(client, resources, room):
    emojis = [f"custom{n}:{1000 + n}" for n in range(20)]
    for emoji in emojis[:19]:
        resources.message_store.add_reaction(room.channel_id, int(room.message_id), emoji, room.owner.id)
    no_content(react(client, room, room.owner, emojis[19]))
    error(react(client, room, room.owner, FIRE), 400, 30010)
    # Joining one of the twenty is not a new emoji.
    no_content(react(client, room, room.member, emojis[0]))
    reactions = reactions_seen_by(client, room, room.owner)
    assert len(reactions) == 20 and reactions[0] == ("custom0", "1000", 2, True)


# -- removing ----------------------------------------------------------------------------------------------

def test_removing_ones_own_reaction_leaves_the_others(client, room):
    no_content(react(client, room, room.member, FIRE))
    no_content(react(client, room, room.owner, FIRE))
    no_content(client.delete(room.url(FIRE, "@me"), headers=room.member.headers))
    assert reactions_seen_by(client, room, room.member) == [(FIRE, None, 1, False)]
    # Removing a reaction that is not there is still a success: DELETE is idempotent.
    no_content(client.delete(room.url(FIRE, "@me"), headers=room.member.headers))
    # By one's own user id it needs no permission either; the last reaction gone, the key goes too.
    no_content(client.delete(room.url(FIRE, str(room.owner.id)), headers=room.owner.headers))
    response = client.get(f"/api/v10/channels/{room.channel_id}/messages/{room.message_id}", headers=room.owner.headers)
    assert "reactions" not in json_body(response, 200)


def test_removing_someone_elses_reaction_needs_manage_messages(client, room):
    no_content(react(client, room, room.owner, FIRE))
    error(client.delete(room.url(FIRE, str(room.owner.id)), headers=room.member.headers), 403, 50013)
    assert reactions_seen_by(client, room, room.owner) == [(FIRE, None, 1, True)]
    no_content(client.delete(room.url(FIRE, str(room.owner.id)), headers=room.moderator.headers))
    assert reactions_seen_by(client, room, room.owner) == []


def test_clearing_all_reactions_or_one_emoji_needs_manage_messages(client, room):
    for emoji in (FIRE, THUMBS_UP, "party:1234567"):
        no_content(react(client, room, room.member, emoji))
    error(client.delete(room.url(), headers=room.member.headers), 403, 50013)
    error(client.delete(room.url(FIRE), headers=room.member.headers), 403, 50013)
    assert len(reactions_seen_by(client, room, room.owner)) == 3
    no_content(client.delete(room.url(FIRE), headers=room.moderator.headers))
    assert [r[0] for r in reactions_seen_by(client, room, room.owner)] == [THUMBS_UP, "party"]
    no_content(client.delete(room.url(), headers=room.moderator.headers))
    assert reactions_seen_by(client, room, room.owner) == []


def test_removing_reactions_of_an_unknown_message_is_10008(client, room):
    unknown = f"/api/v10/channels/{room.channel_id}/messages/4242/reactions"
    for url in (f"{unknown}/{quote(FIRE)}/@me", f"{unknown}/{quote(FIRE)}/{room.member.id}", unknown,
                f"{unknown}/{quote(FIRE)}"):
        error(client.delete(url, headers=room.moderator.headers), 404, 10008)


# -- who reacted -------------------------------------------------------------------------------------------

def test_reactors_are_listed_by_ascending_id_25_at_a_time(client, resources, room):
    # Every other id minted, so that an id between two reactors is nobody's: a cursor that is not a reactor.
    user_ids = [resources.ids.next_id() for _ in range(54)][::2]
    with resources.session() as session:
        session.add_all(User(id=user_id, username=f"reactor{n}", created_at=datetime.now(timezone.utc))
                        for n, user_id in enumerate(user_ids))
        session.commit()
    for user_id in reversed(user_ids):  # newest account first, so the order cannot come from the insertion
        resources.message_store.add_reaction(room.channel_id, int(room.message_id), FIRE, user_id)
    ascending = sorted(user_ids)
    assert reactor_ids(client, room, room.owner, FIRE) == ascending[:25]
    assert reactor_ids(client, room, room.owner, FIRE, limit=100) == ascending
    assert reactor_ids(client, room, room.owner, FIRE, limit=3, after=ascending[1]) == ascending[2:5]
    assert reactor_ids(client, room, room.owner, FIRE, after=ascending[-1]) == []
    assert reactor_ids(client, room, room.owner, FIRE, after=ascending[10] + 1, limit=2) == ascending[11:13]


def test_reactor_list_query_errors(client, room):
    for limit, code in (("0", "NUMBER_TYPE_MIN"), ("101", "NUMBER_TYPE_MAX"), ("x", "NUMBER_TYPE_COERCE")):
        response = client.get(room.url(FIRE), query_string={"limit": limit}, headers=room.owner.headers)
        assert field_error_codes(response, "limit") == [code]
    response = client.get(room.url(FIRE), query_string={"after": "first"}, headers=room.owner.headers)
    assert field_error_codes(response, "after") == ["NUMBER_TYPE_COERCE"]


def test_burst_reactor_list_is_empty_but_still_checks_the_request(client, room):
    no_content(react(client, room, room.member, FIRE))
    assert reactor_ids(client, room, room.owner, FIRE, type=1) == []
    assert reactor_ids(client, room, room.owner, FIRE, type=0) == [room.member.id]
    unknown_message = f"/api/v10/channels/{room.channel_id}/messages/4242/reactions/{quote(FIRE)}?type=1"
    error(client.get(unknown_message, headers=room.owner.headers), 404, 10008)
    error(client.get(f"/api/v10/channels/4242/messages/1/reactions/{quote(FIRE)}?type=1",
                     headers=room.owner.headers), 404, 10003)
    error(client.get(room.url("fire") + "?type=1", headers=room.owner.headers), 400, 10014)


def test_reactor_list_needs_read_message_history(client, make, room):
    no_content(react(client, room, room.owner, FIRE))
    make.overwrite(room.channel_id, room.member.id, 1, deny=Permission.READ_MESSAGE_HISTORY)
    error(client.get(room.url(FIRE), headers=room.member.headers), 403, 50001)


# -- events ------------------------------------------------------------------------------------------------

def test_every_reaction_change_publishes_its_event_once(client, room, published):
    message_id = int(room.message_id)
    where = {"channel_id": str(room.channel_id), "guild_id": str(room.guild_id), "message_id": str(message_id)}
    react(client, room, room.member, FIRE)
    react(client, room, room.member, FIRE)  # a repeat changes nothing, so it announces nothing
    react(client, room, room.member, ":party:1234567")
    client.delete(room.url(FIRE, "@me"), headers=room.member.headers)
    client.delete(room.url(FIRE, "@me"), headers=room.member.headers)
    client.delete(room.url("party:1234567", str(room.member.id)), headers=room.moderator.headers)
    client.delete(room.url("party:1234567", str(room.owner.id)), headers=room.moderator.headers)
    client.delete(room.url(THUMBS_UP), headers=room.moderator.headers)
    client.delete(room.url(), headers=room.moderator.headers)
    fire, party = {"id": None, "name": FIRE}, {"id": "1234567", "name": "party", "animated": False}
    member, author = str(room.member.id), str(room.owner.id)
    added = {"burst": False, "burst_colors": [], "type": 0, "message_author_id": author}
    assert published.dispatches() == [
        ("MESSAGE_REACTION_ADD", {**where, "emoji": fire, "user_id": member, **added}),
        ("MESSAGE_REACTION_ADD", {**where, "emoji": party, "user_id": member, **added}),
        ("MESSAGE_REACTION_REMOVE", {**where, "emoji": fire, "user_id": member, "burst": False, "type": 0}),
        ("MESSAGE_REACTION_REMOVE", {**where, "emoji": party, "user_id": member, "burst": False, "type": 0}),
        ("MESSAGE_REACTION_REMOVE_EMOJI", {**where, "emoji": {"id": None, "name": THUMBS_UP}}),
        ("MESSAGE_REACTION_REMOVE_ALL", where),
    ]
