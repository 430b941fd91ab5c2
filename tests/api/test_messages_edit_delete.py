"""PATCH and DELETE /channels/{id}/messages/{id}, POST .../messages/bulk-delete, and the channel's last_message_id."""
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest

from app.auth.permissions import Permission
from app.ids import snowflake_from_ms
from app.messages.base import Message
from tests.support.factories import Actor
from tests.support.responses import error, field_error_codes, json_body, no_content

MEMBER_PERMISSIONS = Permission.VIEW_CHANNEL | Permission.SEND_MESSAGES | Permission.READ_MESSAGE_HISTORY
SUPPRESS_EMBEDS, URGENT, SUPPRESS_NOTIFICATIONS = 1 << 2, 1 << 4, 1 << 12


@dataclass
class Room:
    """A guild channel with its owner, a plain member, and a moderator who has MANAGE_MESSAGES by role."""

    owner: Actor
    member: Actor
    moderator: Actor
    guild_id: int
    channel_id: int


@pytest.fixture
def room(make):
    owner, member, moderator = make.actor("owner"), make.actor("member"), make.actor("moderator")
    guild_id, channel_id = make.guild(owner, everyone=MEMBER_PERMISSIONS)
    make.member(guild_id, member)
    make.member(guild_id, moderator, roles=[make.role(guild_id, Permission.MANAGE_MESSAGES, name="moderators")])
    return Room(owner, member, moderator, guild_id, channel_id)


def send(client, actor, channel_id, content="hello", **body):
    response = client.post(f"/api/v10/channels/{channel_id}/messages", json={"content": content, **body},
                           headers=actor.headers)
    return json_body(response, 200)


def edit(client, actor, channel_id, message_id, **body):
    return client.patch(f"/api/v10/channels/{channel_id}/messages/{message_id}", json=body, headers=actor.headers)


def delete(client, actor, channel_id, message_id):
    return client.delete(f"/api/v10/channels/{channel_id}/messages/{message_id}", headers=actor.headers)


def bulk_delete(client, actor, channel_id, message_ids):
    return client.post(f"/api/v10/channels/{channel_id}/messages/bulk-delete", json={"messages": message_ids},
                       headers=actor.headers)


def fetch(client, actor, channel_id, message_id):
    return json_body(client.get(f"/api/v10/channels/{channel_id}/messages/{message_id}", headers=actor.headers), 200)


def history_ids(client, actor, channel_id):
    response = client.get(f"/api/v10/channels/{channel_id}/messages", headers=actor.headers)
    return [m["id"] for m in json_body(response, 200)]


def last_message_id(client, actor, channel_id):
    return json_body(client.get(f"/api/v10/channels/{channel_id}", headers=actor.headers), 200)["last_message_id"]


# -- edit --------------------------------------------------------------------------------------------------

def test_author_edits_content_and_gets_edited_timestamp(client, room):
    sent = send(client, room.member, room.channel_id, "first draft")
    before_edit = datetime.now(timezone.utc)
    edited = json_body(edit(client, room.member, room.channel_id, sent["id"], content="final"), 200)
    assert edited == {**sent, "content": "final", "edited_timestamp": edited["edited_timestamp"]}
    edited_at = datetime.fromisoformat(edited["edited_timestamp"])
    assert edited["edited_timestamp"].endswith("+00:00") and len(edited["edited_timestamp"]) == 32
    assert before_edit - timedelta(seconds=1) <= edited_at <= datetime.now(timezone.utc)
    assert fetch(client, room.owner, room.channel_id, sent["id"]) == edited


def test_edit_recomputes_mentions_from_the_new_content(client, make, room):
    carol = make.actor("carol")
    sent = send(client, room.member, room.channel_id, f"hi <@{room.owner.id}>")
    assert [u["id"] for u in sent["mentions"]] == [str(room.owner.id)]
    edited = json_body(edit(client, room.member, room.channel_id, sent["id"], content=f"hi <@{carol.id}>"), 200)
    assert [u["id"] for u in edited["mentions"]] == [str(carol.id)]
    # The edit's own allowed_mentions applies, not the original's.
    quiet = json_body(edit(client, room.member, room.channel_id, sent["id"], content=f"hi <@{carol.id}>",
                           allowed_mentions={"parse": []}), 200)
    assert quiet["mentions"] == []
    assert fetch(client, room.owner, room.channel_id, sent["id"])["mentions"] == []


def test_editing_someone_elses_content_is_50005_even_for_moderators(client, room):
    sent = send(client, room.member, room.channel_id, "mine")
    for other in (room.moderator, room.owner):
        error(edit(client, other, room.channel_id, sent["id"], content="theirs"), 403, 50005)
        error(edit(client, other, room.channel_id, sent["id"], content="theirs", flags=SUPPRESS_EMBEDS), 403, 50005)
    assert fetch(client, room.owner, room.channel_id, sent["id"]) == sent


def test_editing_someone_elses_flags_needs_manage_messages(client, room):
    sent = send(client, room.owner, room.channel_id, "announcement")
    error(edit(client, room.member, room.channel_id, sent["id"], flags=SUPPRESS_EMBEDS), 403, 50013)
    assert fetch(client, room.owner, room.channel_id, sent["id"])["flags"] == 0
    suppressed = json_body(edit(client, room.moderator, room.channel_id, sent["id"], flags=SUPPRESS_EMBEDS), 200)
    assert suppressed["flags"] == SUPPRESS_EMBEDS
    assert suppressed["content"] == "announcement" and suppressed["edited_timestamp"] is None


def test_suppress_embeds_toggles_and_other_flag_bits_are_ignored(client, room):
    sent = send(client, room.member, room.channel_id, "link", flags=SUPPRESS_NOTIFICATIONS)
    url = (room.member, room.channel_id, sent["id"])
    assert json_body(edit(client, *url, flags=SUPPRESS_EMBEDS | URGENT), 200)["flags"] == \
        SUPPRESS_EMBEDS | SUPPRESS_NOTIFICATIONS
    assert json_body(edit(client, *url, flags=0), 200)["flags"] == SUPPRESS_NOTIFICATIONS
    assert fetch(client, room.owner, room.channel_id, sent["id"])["flags"] == SUPPRESS_NOTIFICATIONS


def test_tts_in_an_edit_is_ignored(client, room):
    # discord.py's Message.edit always sends tts (and v2.7.1 the current flags) along with the content.
    sent = send(client, room.owner, room.channel_id, "spoken?")
    edited = json_body(edit(client, room.owner, room.channel_id, sent["id"], content="still not", tts=True,
                            flags=0), 200)
    assert edited["tts"] is False and edited["content"] == "still not"


def test_edit_keeps_content_rules(client, room):
    sent = send(client, room.member, room.channel_id, "keep me")
    assert field_error_codes(edit(client, room.member, room.channel_id, sent["id"], content="x" * 2001),
                             "content") == ["BASE_TYPE_MAX_LENGTH"]
    error(edit(client, room.member, room.channel_id, sent["id"], content="   "), 400, 50006)
    assert fetch(client, room.owner, room.channel_id, sent["id"]) == sent


def test_editing_or_deleting_an_unknown_message_is_10008(client, make, room):
    other_channel = make.channel(room.guild_id, "elsewhere")
    elsewhere = send(client, room.member, other_channel, "over there")
    for message_id in (4242, elsewhere["id"]):
        error(edit(client, room.member, room.channel_id, message_id, content="x"), 404, 10008)
        error(delete(client, room.owner, room.channel_id, message_id), 404, 10008)
    assert fetch(client, room.owner, other_channel, elsewhere["id"]) == elsewhere


def test_message_update_event_carries_the_edited_message(client, room, published):
    sent = send(client, room.member, room.channel_id, "draft")
    published.clear()
    edited = edit(client, room.member, room.channel_id, sent["id"], content="done")
    [event] = published
    assert (event.type, event.channel_id, event.guild_id) == ("MESSAGE_UPDATE", room.channel_id, room.guild_id)
    assert event.data == {**json_body(edited, 200), "guild_id": str(room.guild_id)}
    assert event.data["content"] == "done" and event.data["edited_timestamp"] is not None


# -- delete ------------------------------------------------------------------------------------------------

def test_author_deletes_their_message_once(client, room, published):
    sent = send(client, room.member, room.channel_id, "regret")
    kept = send(client, room.member, room.channel_id, "keeper")
    published.clear()
    no_content(delete(client, room.member, room.channel_id, sent["id"]))
    error(client.get(f"/api/v10/channels/{room.channel_id}/messages/{sent['id']}", headers=room.owner.headers),
          404, 10008)
    assert history_ids(client, room.owner, room.channel_id) == [kept["id"]]
    error(delete(client, room.member, room.channel_id, sent["id"]), 404, 10008)
    assert published.dispatches() == [("MESSAGE_DELETE", {"id": sent["id"], "channel_id": str(room.channel_id),
                                                          "guild_id": str(room.guild_id)})]


def test_deleting_someone_elses_message_needs_manage_messages(client, room):
    sent = send(client, room.owner, room.channel_id, "owner's words")
    error(delete(client, room.member, room.channel_id, sent["id"]), 403, 50013)
    assert history_ids(client, room.owner, room.channel_id) == [sent["id"]]
    no_content(delete(client, room.moderator, room.channel_id, sent["id"]))
    assert history_ids(client, room.owner, room.channel_id) == []


def test_thread_starter_messages_cannot_be_deleted_but_pin_notices_can(client, resources, room):
    thread_starter_type, pin_notice_type = 21, 6
    start = snowflake_from_ms(int(time.time() * 1000) - 60_000)
    for message_id, message_type in ((start, thread_starter_type), (start + 1, pin_notice_type)):
        resources.message_store.create_message(Message(id=message_id, channel_id=room.channel_id,
                                                       author_id=room.member.id, type=message_type))
    error(delete(client, room.owner, room.channel_id, start), 400, 50021)
    no_content(delete(client, room.owner, room.channel_id, start + 1))
    assert history_ids(client, room.owner, room.channel_id) == [str(start)]


def test_last_message_id_follows_creates_and_deletes(client, room):
    assert last_message_id(client, room.owner, room.channel_id) is None
    first, second, third = (send(client, room.member, room.channel_id, str(n))["id"] for n in range(3))
    assert last_message_id(client, room.owner, room.channel_id) == third
    no_content(delete(client, room.member, room.channel_id, second))
    assert last_message_id(client, room.owner, room.channel_id) == third
    no_content(delete(client, room.member, room.channel_id, third))
    assert last_message_id(client, room.owner, room.channel_id) == first
    fourth, fifth = (send(client, room.member, room.channel_id, str(n))["id"] for n in range(2))
    no_content(bulk_delete(client, room.moderator, room.channel_id, [fourth, fifth]))
    assert last_message_id(client, room.owner, room.channel_id) == first
    no_content(delete(client, room.member, room.channel_id, first))
    assert last_message_id(client, room.owner, room.channel_id) is None


# -- bulk delete -------------------------------------------------------------------------------------------

def recent_unknown_ids(count):
    """Ids minted a minute ago that no message has: recent enough for bulk delete."""
    start = snowflake_from_ms(int(time.time() * 1000) - 60_000)
    return [start + n for n in range(count)]


def test_bulk_delete_takes_ids_as_integers_and_as_strings(client, room, published):
    ids = [send(client, room.member, room.channel_id, str(n))["id"] for n in range(5)]
    published.clear()
    no_content(bulk_delete(client, room.moderator, room.channel_id, [int(ids[0]), int(ids[1])]))
    no_content(bulk_delete(client, room.moderator, room.channel_id, [ids[2], ids[3]]))
    assert history_ids(client, room.owner, room.channel_id) == [ids[4]]
    where = {"channel_id": str(room.channel_id), "guild_id": str(room.guild_id)}
    assert published.dispatches() == [
        ("MESSAGE_DELETE_BULK", {"ids": sorted([ids[0], ids[1]], key=int), **where}),
        ("MESSAGE_DELETE_BULK", {"ids": sorted([ids[2], ids[3]], key=int), **where}),
    ]


def test_bulk_delete_needs_manage_messages_even_for_own_messages(client, room):
    ids = [send(client, room.member, room.channel_id, str(n))["id"] for n in range(2)]
    error(bulk_delete(client, room.member, room.channel_id, ids), 403, 50013)
    assert len(history_ids(client, room.owner, room.channel_id)) == 2


def test_bulk_delete_takes_2_to_100_ids_and_unknown_ones_count(client, room):
    ids = [send(client, room.member, room.channel_id, str(n))["id"] for n in range(2)]
    for too_few_or_too_many in ([], [ids[0]], [ids[0]] + recent_unknown_ids(100)):
        error(bulk_delete(client, room.moderator, room.channel_id, too_few_or_too_many), 400, 50016)
    assert len(history_ids(client, room.owner, room.channel_id)) == 2
    no_content(bulk_delete(client, room.moderator, room.channel_id, ids + recent_unknown_ids(98)))
    assert history_ids(client, room.owner, room.channel_id) == []


def test_bulk_delete_with_a_duplicate_or_malformed_id_deletes_nothing(client, room):
    ids = [send(client, room.member, room.channel_id, str(n))["id"] for n in range(2)]
    error(bulk_delete(client, room.moderator, room.channel_id, [ids[0], ids[1], int(ids[0])]), 400, 50035)
    response = bulk_delete(client, room.moderator, room.channel_id, [ids[0], "a"])
    assert field_error_codes(response, "messages", "1") == ["NUMBER_TYPE_COERCE"]
    response = client.post(f"/api/v10/channels/{room.channel_id}/messages/bulk-delete", json={},
                           headers=room.moderator.headers)
    assert field_error_codes(response, "messages") == ["BASE_TYPE_REQUIRED"]
    assert len(history_ids(client, room.owner, room.channel_id)) == 2


def test_bulk_delete_with_any_message_older_than_14_days_deletes_nothing(client, resources, room):
    now_ms = int(time.time() * 1000)
    fifteen_days_old = snowflake_from_ms(now_ms - 15 * 86_400_000)
    thirteen_days_old = snowflake_from_ms(now_ms - 13 * 86_400_000)
    for message_id in (fifteen_days_old, thirteen_days_old):
        resources.message_store.create_message(
            Message(id=message_id, channel_id=room.channel_id, author_id=room.member.id, content="old"))
    recent = send(client, room.member, room.channel_id, "new")["id"]
    error(bulk_delete(client, room.moderator, room.channel_id, [recent, fifteen_days_old]), 400, 50034)
    assert len(history_ids(client, room.owner, room.channel_id)) == 3
    no_content(bulk_delete(client, room.moderator, room.channel_id, [recent, thirteen_days_old]))
    assert history_ids(client, room.owner, room.channel_id) == [str(fifteen_days_old)]


def test_bulk_delete_only_touches_and_announces_messages_of_the_channel_in_the_url(client, make, room, published):
    other_channel = make.channel(room.guild_id, "elsewhere")
    here = send(client, room.member, room.channel_id, "here")["id"]
    there = send(client, room.member, other_channel, "there")["id"]
    published.clear()
    no_content(bulk_delete(client, room.moderator, room.channel_id, [here, there] + recent_unknown_ids(1)))
    assert history_ids(client, room.owner, room.channel_id) == []
    assert history_ids(client, room.owner, other_channel) == [there]
    assert published.dispatches() == [("MESSAGE_DELETE_BULK", {"ids": [here], "channel_id": str(room.channel_id),
                                                               "guild_id": str(room.guild_id)})]
    # Nothing of the channel among the ids: a success that deletes and announces nothing.
    no_content(bulk_delete(client, room.moderator, room.channel_id, [there] + recent_unknown_ids(1)))
    assert len(published.dispatches()) == 1
    assert history_ids(client, room.owner, other_channel) == [there]
