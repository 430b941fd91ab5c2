"""Threads: starting them (from a message, on their own, forum posts), sending in them, archiving (by hand and by
inactivity, with no scheduler), their members, the active and archived lists, and who may do each."""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from app.auth.permissions import Permission
from app.services.access import AccessService
from models import Thread
from tests.api.test_metadata_version import version
from tests.support.factories import Actor
from tests.support.responses import error, field_error_codes, json_body, no_content

P = Permission
EVERYONE = P.VIEW_CHANNEL | P.SEND_MESSAGES | P.READ_MESSAGE_HISTORY
THREADERS = P.CREATE_PUBLIC_THREADS | P.CREATE_PRIVATE_THREADS | P.SEND_MESSAGES_IN_THREADS
MEMBER = 1  # overwrite type


@dataclass
class Room:
    owner: Actor
    member: Actor      # may create threads and send in them
    plain: Actor       # @everyone only: sends in channels, not in threads, creates none
    mod: Actor         # MANAGE_THREADS (and the thread rights)
    outsider: Actor    # not in the guild
    guild_id: int
    channel_id: int


@pytest.fixture
def room(make):
    owner, member, plain, mod, outsider = (make.actor(n) for n in ("owner", "member", "plain", "mod", "outsider"))
    guild_id, channel_id = make.guild(owner, everyone=EVERYONE)
    make.member(guild_id, member, roles=[make.role(guild_id, THREADERS, name="threaders")])
    make.member(guild_id, plain)
    make.member(guild_id, mod, roles=[make.role(guild_id, THREADERS | P.MANAGE_THREADS, name="mods")])
    return Room(owner, member, plain, mod, outsider, guild_id, channel_id)


def send(client, channel_id, actor, content="hello"):
    return client.post(f"/api/v10/channels/{channel_id}/messages", json={"content": content}, headers=actor.headers)


def start(client, room, actor=None, **body):
    body.setdefault("name", "a thread")
    return client.post(f"/api/v10/channels/{room.channel_id}/threads", json=body,
                       headers=(actor or room.member).headers)


def public(client, room, actor=None, **body):
    return json_body(start(client, room, actor, type=11, **body), 201)


def private(client, room, actor=None, **body):
    return json_body(start(client, room, actor, type=12, **body), 201)


def get(client, channel_id, actor):
    return client.get(f"/api/v10/channels/{channel_id}", headers=actor.headers)


def patch(client, channel_id, actor, **body):
    return client.patch(f"/api/v10/channels/{channel_id}", json=body, headers=actor.headers)


def age(resources, thread_id, minutes):
    """Move the thread's creation and archive change ``minutes`` into the past, as if nobody had used it since."""
    moment = datetime.now(timezone.utc) - timedelta(minutes=minutes)
    with resources.engine.begin() as connection:
        connection.execute(update(Thread).where(Thread.channel_id == thread_id)
                           .values(created_at=moment, archive_timestamp=moment))


# -- starting -------------------------------------------------------------------------------------------------

def test_a_thread_from_a_message_has_the_message_id_and_discords_fields(client, room):
    message_id = json_body(send(client, room.channel_id, room.member), 200)["id"]
    thread = json_body(client.post(f"/api/v10/channels/{room.channel_id}/messages/{message_id}/threads",
                                   json={"name": "about that", "auto_archive_duration": 60,
                                         "rate_limit_per_user": 5}, headers=room.member.headers), 201)
    assert thread["id"] == message_id
    assert (thread["type"], thread["parent_id"], thread["owner_id"], thread["guild_id"], thread["name"]) == (
        11, str(room.channel_id), str(room.member.id), str(room.guild_id), "about that")
    assert (thread["member_count"], thread["message_count"], thread["total_message_sent"],
            thread["rate_limit_per_user"], thread["applied_tags"]) == (1, 0, 0, 5, [])
    metadata = thread["thread_metadata"]
    assert (metadata["archived"], metadata["locked"], metadata["auto_archive_duration"]) == (False, False, 60)
    assert "invitable" not in metadata and metadata["create_timestamp"]
    assert json_body(get(client, message_id, room.plain), 200) == thread
    # The message now says a thread was started from it (HAS_THREAD).
    started = json_body(client.get(f"/api/v10/channels/{room.channel_id}/messages/{message_id}",
                                   headers=room.plain.headers), 200)
    assert started["flags"] & 32
    again = client.post(f"/api/v10/channels/{room.channel_id}/messages/{message_id}/threads", json={"name": "x"},
                        headers=room.mod.headers)
    error(again, 400, 160004)
    # Threads are not among the guild's channels.
    listed = json_body(client.get(f"/api/v10/guilds/{room.guild_id}/channels", headers=room.owner.headers), 200)
    assert message_id not in {c["id"] for c in listed}


def test_starting_from_an_unknown_message_is_404(client, room):
    error(client.post(f"/api/v10/channels/{room.channel_id}/messages/12345/threads", json={"name": "x"},
                      headers=room.member.headers), 404, 10008)


def test_who_may_start_threads(client, room):
    message_id = json_body(send(client, room.channel_id, room.plain), 200)["id"]
    from_message = f"/api/v10/channels/{room.channel_id}/messages/{message_id}/threads"
    error(client.post(from_message, json={"name": "x"}, headers=room.outsider.headers), 403, 50001)
    error(client.post(from_message, json={"name": "x"}, headers=room.plain.headers), 403, 50013)
    error(start(client, room, room.outsider, type=11), 403, 50001)
    error(start(client, room, room.plain, type=11), 403, 50013)
    error(start(client, room, room.plain, type=12), 403, 50013)
    # Overwrites of the parent decide: denying CREATE_PRIVATE_THREADS to the member stops private threads only.
    json_body(start(client, room, room.member, type=11), 201)
    client.put(f"/api/v10/channels/{room.channel_id}/permissions/{room.member.id}",
               json={"type": MEMBER, "deny": str(int(P.CREATE_PRIVATE_THREADS))}, headers=room.owner.headers)
    error(start(client, room, room.member, type=12), 403, 50013)


def test_start_thread_validates_its_body(client, room):
    assert field_error_codes(start(client, room, name=""), "name") == ["BASE_TYPE_MIN_LENGTH"]
    assert field_error_codes(start(client, room, auto_archive_duration=30), "auto_archive_duration") == [
        "BASE_TYPE_CHOICES"]
    assert field_error_codes(start(client, room, type=0), "type") == ["BASE_TYPE_CHOICES"]
    assert field_error_codes(start(client, room, type=11, invitable=False), "invitable") == [
        "THREAD_INVITABLE_PRIVATE_ONLY"]
    assert field_error_codes(start(client, room, type=11, message={"content": "x"}), "message") == [
        "THREAD_MESSAGE_FORUM_ONLY"]
    # Discord's default type in v10 is a private thread.
    thread = json_body(start(client, room), 201)
    assert thread["type"] == 12 and thread["thread_metadata"]["invitable"] is True


# -- sending ----------------------------------------------------------------------------------------------------

def test_sending_needs_send_messages_in_threads_not_send_messages(client, room, make):
    thread = public(client, room)
    error(send(client, thread["id"], room.plain), 403, 50013)
    error(send(client, thread["id"], room.outsider), 403, 50001)
    # Without SEND_MESSAGES in the parent, SEND_MESSAGES_IN_THREADS still sends in its threads.
    client.put(f"/api/v10/channels/{room.channel_id}/permissions/{room.member.id}",
               json={"type": MEMBER, "deny": str(int(P.SEND_MESSAGES))}, headers=room.owner.headers)
    error(send(client, room.channel_id, room.member), 403, 50013)
    sent = json_body(send(client, thread["id"], room.member, "in the thread"), 200)
    assert sent["channel_id"] == thread["id"]
    history = json_body(client.get(f"/api/v10/channels/{thread['id']}/messages", headers=room.plain.headers), 200)
    assert [m["content"] for m in history] == ["in the thread"]


def test_a_sender_joins_and_the_counters_move(client, room):
    thread = public(client, room)
    ids = [json_body(send(client, thread["id"], room.mod, f"m{i}"), 200)["id"] for i in range(3)]
    shown = json_body(get(client, thread["id"], room.member), 200)
    assert (shown["message_count"], shown["total_message_sent"], shown["member_count"]) == (3, 3, 2)
    assert shown["last_message_id"] == ids[-1]
    no_content(client.delete(f"/api/v10/channels/{thread['id']}/messages/{ids[0]}", headers=room.mod.headers))
    shown = json_body(get(client, thread["id"], room.member), 200)
    assert (shown["message_count"], shown["total_message_sent"]) == (2, 3)
    members = json_body(client.get(f"/api/v10/channels/{thread['id']}/thread-members", headers=room.member.headers),
                        200)
    assert sorted(m["user_id"] for m in members) == sorted([str(room.member.id), str(room.mod.id)])


# -- private threads ------------------------------------------------------------------------------------------

def test_private_threads_are_seen_by_their_members_and_managers_only(client, room, make):
    other = make.actor("other")
    make.member(room.guild_id, other, roles=[make.role(room.guild_id, THREADERS, name="more")])
    thread = private(client, room)
    json_body(send(client, thread["id"], room.member, "secret"), 200)
    for outsider in (other, room.plain):
        error(get(client, thread["id"], outsider), 403, 50001)
        error(client.get(f"/api/v10/channels/{thread['id']}/messages", headers=outsider.headers), 403, 50001)
        error(send(client, thread["id"], outsider), 403, 50001)
        error(client.put(f"/api/v10/channels/{thread['id']}/thread-members/@me", headers=outsider.headers),
              403, 50001)
    error(get(client, thread["id"], room.outsider), 403, 50001)
    json_body(get(client, thread["id"], room.mod), 200)
    active = json_body(client.get(f"/api/v10/guilds/{room.guild_id}/threads/active", headers=other.headers), 200)
    assert active == {"threads": [], "members": []}
    # Added by a member (invitable), the other user sees it and its history.
    no_content(client.put(f"/api/v10/channels/{thread['id']}/thread-members/{other.id}", headers=room.member.headers))
    history = json_body(client.get(f"/api/v10/channels/{thread['id']}/messages", headers=other.headers), 200)
    assert [m["content"] for m in history] == ["secret"]
    active = json_body(client.get(f"/api/v10/guilds/{room.guild_id}/threads/active", headers=other.headers), 200)
    assert [t["id"] for t in active["threads"]] == [thread["id"]]
    assert [m["user_id"] for m in active["members"]] == [str(other.id)]


def test_a_private_thread_that_is_not_invitable_takes_members_from_managers_only(client, room, make):
    other = make.actor("other")
    make.member(room.guild_id, other)
    thread = private(client, room, room.mod, invitable=False)
    no_content(client.put(f"/api/v10/channels/{thread['id']}/thread-members/{room.member.id}",
                          headers=room.mod.headers))
    error(client.put(f"/api/v10/channels/{thread['id']}/thread-members/{other.id}", headers=room.member.headers),
          403, 50013)


# -- archiving --------------------------------------------------------------------------------------------------

def test_archive_by_hand_then_a_send_reopens_it(client, room, published):
    thread = public(client, room)
    error(patch(client, thread["id"], room.plain, archived=True), 403, 50013)
    archived = json_body(patch(client, thread["id"], room.member, archived=True), 200)
    assert archived["thread_metadata"]["archived"] is True
    error(patch(client, thread["id"], room.member, name="renamed"), 400, 50083)
    error(client.put(f"/api/v10/channels/{thread['id']}/thread-members/@me", headers=room.mod.headers), 400, 50083)
    published.clear()
    json_body(send(client, thread["id"], room.mod, "back"), 200)
    assert json_body(get(client, thread["id"], room.member), 200)["thread_metadata"]["archived"] is False
    types = [t for t, _ in published.dispatches()]
    assert types[:1] == ["THREAD_UPDATE"] and "MESSAGE_CREATE" in types


def test_a_locked_archived_thread_reopens_only_for_managers(client, room):
    thread = public(client, room)
    error(patch(client, thread["id"], room.member, locked=True), 403, 50013)
    json_body(patch(client, thread["id"], room.mod, locked=True), 200)
    error(send(client, thread["id"], room.member), 403, 160005)
    json_body(patch(client, thread["id"], room.mod, archived=True), 200)
    error(send(client, thread["id"], room.member), 403, 50083)
    error(patch(client, thread["id"], room.member, archived=False), 403, 50013)
    json_body(send(client, thread["id"], room.mod), 200)


def test_inactivity_archives_without_a_scheduler(client, room, resources, published):
    thread = public(client, room, auto_archive_duration=60)
    age(resources, thread["id"], 61)
    shown = json_body(get(client, thread["id"], room.member), 200)
    assert shown["thread_metadata"]["archived"] is True
    archive_time = datetime.fromisoformat(shown["thread_metadata"]["archive_timestamp"])
    assert abs(archive_time - (datetime.now(timezone.utc) - timedelta(minutes=1))) < timedelta(seconds=30)
    active = json_body(client.get(f"/api/v10/guilds/{room.guild_id}/threads/active", headers=room.member.headers),
                       200)
    assert active["threads"] == []
    listed = json_body(client.get(f"/api/v10/channels/{room.channel_id}/threads/archived/public",
                                  headers=room.member.headers), 200)
    assert [t["id"] for t in listed["threads"]] == [thread["id"]] and listed["has_more"] is False
    # A send observes it: the archiving is written down (THREAD_UPDATE), then the send reopens the thread.
    published.clear()
    json_body(send(client, thread["id"], room.member), 200)
    updates = [d["thread_metadata"]["archived"] for t, d in published.dispatches() if t == "THREAD_UPDATE"]
    assert updates == [True, False]
    assert json_body(get(client, thread["id"], room.member), 200)["thread_metadata"]["archived"] is False
    # A recent message keeps it active even though its creation is old.
    age(resources, thread["id"], 600)
    assert json_body(get(client, thread["id"], room.member), 200)["thread_metadata"]["archived"] is False


# -- editing and deleting ---------------------------------------------------------------------------------------

def test_an_archived_thread_refuses_message_edits_and_deletes_until_reopened(client, room):
    """Discord answers 50083 to edits and deletes in an archived thread, whoever asks (the guild owner too),
    locked or not: only a send reopens a thread by itself."""
    thread = public(client, room)
    url = f"/api/v10/channels/{thread['id']}/messages"
    first, second = (json_body(send(client, thread["id"], room.member, text), 200)["id"] for text in ("a", "b"))
    for locked in (True, False):
        json_body(patch(client, thread["id"], room.mod, locked=locked, archived=True), 200)
        error(client.patch(f"{url}/{first}", json={"content": "changed"}, headers=room.member.headers), 400, 50083)
        error(client.patch(f"{url}/{first}", json={"flags": 4}, headers=room.owner.headers), 400, 50083)
        for actor in (room.member, room.owner):
            error(client.delete(f"{url}/{first}", headers=actor.headers), 400, 50083)
        error(client.post(f"{url}/bulk-delete", json={"messages": [first, second]}, headers=room.owner.headers),
              400, 50083)
        json_body(patch(client, thread["id"], room.mod, archived=False), 200)
    # Reopened, they go through.
    assert json_body(client.patch(f"{url}/{first}", json={"content": "changed"}, headers=room.member.headers),
                     200)["content"] == "changed"
    no_content(client.delete(f"{url}/{first}", headers=room.member.headers))
    no_content(client.delete(f"{url}/{second}", headers=room.owner.headers))


def test_thread_edits_take_thread_fields_only(client, room):
    thread = public(client, room)
    edited = json_body(patch(client, thread["id"], room.member, name="new name", auto_archive_duration=4320), 200)
    assert (edited["name"], edited["thread_metadata"]["auto_archive_duration"]) == ("new name", 4320)
    assert field_error_codes(patch(client, thread["id"], room.member, topic="x"), "topic") == [
        "CHANNEL_FIELD_INVALID"]
    assert field_error_codes(patch(client, room.channel_id, room.owner, archived=True), "archived") == [
        "CHANNEL_FIELD_INVALID"]
    assert field_error_codes(patch(client, thread["id"], room.mod, invitable=False), "invitable") == [
        "THREAD_INVITABLE_PRIVATE_ONLY"]
    assert field_error_codes(patch(client, thread["id"], room.mod, applied_tags=["1"]), "applied_tags", "0") == [
        "UNKNOWN_TAG"]
    error(patch(client, thread["id"], room.plain, name="mine"), 403, 50013)
    error(patch(client, thread["id"], room.member, rate_limit_per_user=10), 403, 50013)
    assert json_body(patch(client, thread["id"], room.mod, rate_limit_per_user=10), 200)["rate_limit_per_user"] == 10
    error(client.put(f"/api/v10/channels/{thread['id']}/permissions/{room.member.id}", json={"type": MEMBER},
                     headers=room.owner.headers), 400, 50024)


def test_only_the_owner_and_managers_edit_a_thread_and_an_edit_changing_nothing_announces_nothing(client, room,
                                                                                                   published):
    theirs = public(client, room, room.mod)
    error(patch(client, theirs["id"], room.outsider), 403, 50001)
    # A member who may send in the thread, but neither owns it nor holds MANAGE_THREADS: no edit, empty or not.
    for body in ({}, {"archived": False}, {"name": "mine"}, {"auto_archive_duration": 60}):
        error(patch(client, theirs["id"], room.member, **body), 403, 50013)
    mine = public(client, room)
    published.clear()
    for actor, body in ((room.member, {}), (room.member, {"archived": False}), (room.member, {"name": "a thread"}),
                        (room.mod, {"locked": False, "auto_archive_duration": 1440})):
        assert json_body(patch(client, mine["id"], actor, **body), 200) == mine
    # No THREAD_UPDATE and no audit entry (GUILD_AUDIT_LOG_ENTRY_CREATE) for edits that change nothing.
    assert published.dispatches(audit=True) == []
    # Reopening an unlocked archived thread is the one edit anyone who may send in it makes, as on Discord.
    json_body(patch(client, theirs["id"], room.mod, archived=True), 200)
    published.clear()
    reopened = json_body(patch(client, theirs["id"], room.member, archived=False), 200)
    assert reopened["thread_metadata"]["archived"] is False
    assert [t for t, _ in published.dispatches(audit=True)] == ["THREAD_UPDATE", "GUILD_AUDIT_LOG_ENTRY_CREATE"]


def test_deleting_a_thread_needs_manage_threads_and_announces_it(client, room, published):
    thread = public(client, room)
    json_body(send(client, thread["id"], room.member), 200)
    error(client.delete(f"/api/v10/channels/{thread['id']}", headers=room.member.headers), 403, 50013)
    error(client.delete(f"/api/v10/channels/{thread['id']}", headers=room.outsider.headers), 403, 50001)
    published.clear()
    assert json_body(client.delete(f"/api/v10/channels/{thread['id']}", headers=room.mod.headers), 200)["id"] == \
        thread["id"]
    assert published.dispatches() == [("THREAD_DELETE", {"id": thread["id"], "parent_id": str(room.channel_id),
                                                          "type": 11, "guild_id": str(room.guild_id)})]
    error(get(client, thread["id"], room.mod), 404, 10003)


def test_deleting_the_parent_deletes_its_threads(client, room, make):
    channel_id = make.channel(room.guild_id, "doomed")
    thread = json_body(client.post(f"/api/v10/channels/{channel_id}/threads", json={"name": "t", "type": 11},
                                   headers=room.member.headers), 201)
    no_content(client.put(f"/api/v10/channels/{thread['id']}/thread-members/@me", headers=room.mod.headers))
    json_body(client.delete(f"/api/v10/channels/{channel_id}", headers=room.owner.headers), 200)
    error(get(client, thread["id"], room.owner), 404, 10003)


# -- members ------------------------------------------------------------------------------------------------------

def test_thread_members_routes(client, room, published):
    thread = public(client, room)
    base = f"/api/v10/channels/{thread['id']}/thread-members"
    published.clear()
    no_content(client.put(f"{base}/@me", headers=room.plain.headers))
    no_content(client.put(f"{base}/@me", headers=room.plain.headers))  # once is enough
    kinds = [t for t, _ in published.dispatches()]
    assert kinds == ["THREAD_MEMBERS_UPDATE", "THREAD_MEMBER_UPDATE"]
    update_ = published.dispatches()[0][1]
    assert update_["member_count"] == 2 and [m["user_id"] for m in update_["added_members"]] == [str(room.plain.id)]
    one = json_body(client.get(f"{base}/{room.plain.id}", query_string={"with_member": "true"},
                               headers=room.member.headers), 200)
    assert one["user_id"] == str(room.plain.id) and one["member"]["user"]["id"] == str(room.plain.id)
    assert "member" not in json_body(client.get(f"{base}/{room.plain.id}", headers=room.member.headers), 200)
    error(client.get(f"{base}/{room.mod.id}", headers=room.member.headers), 404, 10007)
    listed = json_body(client.get(base, query_string={"limit": 1}, headers=room.member.headers), 200)
    first = min(room.member.id, room.plain.id)
    assert [m["user_id"] for m in listed] == [str(first)]
    after = json_body(client.get(base, query_string={"after": first, "with_member": "1"},
                                 headers=room.member.headers), 200)
    assert [m["user_id"] for m in after] == [str(max(room.member.id, room.plain.id))] and "member" in after[0]
    error(client.delete(f"{base}/{room.plain.id}", headers=room.member.headers), 403, 50013)
    no_content(client.delete(f"{base}/{room.plain.id}", headers=room.mod.headers))
    error(client.get(f"{base}/{room.plain.id}", headers=room.member.headers), 404, 10007)
    no_content(client.delete(f"{base}/@me", headers=room.member.headers))
    assert json_body(get(client, thread["id"], room.member), 200)["member_count"] == 0
    error(client.get(base, headers=room.outsider.headers), 403, 50001)
    error(client.put(f"{base}/{room.outsider.id}", headers=room.member.headers), 404, 10007)


# -- lists --------------------------------------------------------------------------------------------------------

def test_archived_lists_page_latest_first(client, room):
    ids = []
    for name in ("a", "b", "c"):
        thread = public(client, room, name=name)
        json_body(patch(client, thread["id"], room.member, archived=True), 200)
        ids.append(thread["id"])
    url = f"/api/v10/channels/{room.channel_id}/threads/archived/public"
    first = json_body(client.get(url, query_string={"limit": 2}, headers=room.plain.headers), 200)
    assert [t["id"] for t in first["threads"]] == [ids[2], ids[1]] and first["has_more"] is True
    cursor = first["threads"][-1]["thread_metadata"]["archive_timestamp"]
    rest = json_body(client.get(url, query_string={"limit": 2, "before": cursor}, headers=room.plain.headers), 200)
    assert [t["id"] for t in rest["threads"]] == [ids[0]] and rest["has_more"] is False
    assert [m["user_id"] for m in first["members"]] == []
    assert field_error_codes(client.get(url, query_string={"before": "yesterday"}, headers=room.plain.headers),
                             "before") == ["DATE_TYPE_PARSE"]
    error(client.get(url, headers=room.outsider.headers), 403, 50001)


def test_archived_private_lists(client, room):
    thread = private(client, room)
    json_body(patch(client, thread["id"], room.member, archived=True), 200)
    url = f"/api/v10/channels/{room.channel_id}/threads/archived/private"
    error(client.get(url, headers=room.member.headers), 403, 50013)
    assert [t["id"] for t in json_body(client.get(url, headers=room.mod.headers), 200)["threads"]] == [thread["id"]]
    joined = f"/api/v10/channels/{room.channel_id}/users/@me/threads/archived/private"
    mine = json_body(client.get(joined, headers=room.member.headers), 200)
    assert [t["id"] for t in mine["threads"]] == [thread["id"]]
    assert [m["user_id"] for m in mine["members"]] == [str(room.member.id)]
    assert json_body(client.get(joined, headers=room.mod.headers), 200)["threads"] == []
    assert json_body(client.get(joined, query_string={"before": thread["id"]}, headers=room.member.headers),
                     200)["threads"] == []
    public_list = json_body(client.get(f"/api/v10/channels/{room.channel_id}/threads/archived/public",
                                       headers=room.mod.headers), 200)
    assert public_list["threads"] == []


# -- forum posts --------------------------------------------------------------------------------------------------

def test_a_forum_post_starts_with_its_message(client, room, make, published):
    forum_id = make.channel(room.guild_id, "forum", type_=15)
    url = f"/api/v10/channels/{forum_id}/threads"
    published.clear()
    post = json_body(client.post(url, json={"name": "a post", "applied_tags": [], "message": {"content": "first!"}},
                                 headers=room.plain.headers), 201)
    assert post["type"] == 11 and post["parent_id"] == str(forum_id)
    assert post["message"]["id"] == post["id"] and post["message"]["channel_id"] == post["id"]
    assert post["message"]["content"] == "first!"
    assert post["message_count"] == 0
    kinds = [t for t, _ in published.dispatches()]
    assert kinds[0] == "THREAD_CREATE" and "MESSAGE_CREATE" in kinds
    history = json_body(client.get(f"/api/v10/channels/{post['id']}/messages", headers=room.member.headers), 200)
    assert [m["id"] for m in history] == [post["id"]]
    assert field_error_codes(client.post(url, json={"name": "x"}, headers=room.plain.headers), "message") == [
        "BASE_TYPE_REQUIRED"]
    error(client.post(url, json={"name": "x", "message": {"content": " "}}, headers=room.plain.headers), 400, 50006)
    assert field_error_codes(client.post(url, json={"name": "x", "message": {"content": "x", "sticker_ids": ["1"]}},
                                         headers=room.plain.headers), "message", "sticker_ids") == [
        "UNSUPPORTED_FIELD"]
    assert field_error_codes(client.post(url, json={"name": "x", "applied_tags": ["5"], "message": {"content": "x"}},
                                         headers=room.plain.headers), "applied_tags", "0") == ["UNKNOWN_TAG"]
    error(client.post(url, json={"name": "x", "message": {"content": "x"}}, headers=room.outsider.headers), 403, 50001)
    make.overwrite(forum_id, room.guild_id, 0, deny=P.SEND_MESSAGES)
    error(client.post(url, json={"name": "x", "message": {"content": "x"}}, headers=room.plain.headers), 403, 50013)
    error(send(client, forum_id, room.owner), 400, 50008)


# -- events -------------------------------------------------------------------------------------------------------

def test_thread_events_carry_discords_payloads(client, room, published):
    published.clear()
    thread = public(client, room)
    (kind, data), = published.dispatches()
    assert kind == "THREAD_CREATE" and data["newly_created"] is True and data["id"] == thread["id"]
    assert data["guild_id"] == str(room.guild_id) and data["thread_metadata"] == thread["thread_metadata"]
    published.clear()
    json_body(patch(client, thread["id"], room.member, name="renamed"), 200)
    (kind, data), = published.dispatches()
    assert (kind, data["name"]) == ("THREAD_UPDATE", "renamed")


def test_typing_in_a_thread_needs_send_messages_in_threads(client, room):
    thread = public(client, room)
    no_content(client.post(f"/api/v10/channels/{thread['id']}/typing", headers=room.member.headers))
    error(client.post(f"/api/v10/channels/{thread['id']}/typing", headers=room.plain.headers), 403, 50013)


def test_search_reads_private_threads_only_for_their_members(client, room, resources):
    """The search route asks the engine only about readable_channels: a private thread is among them for its
    members and for MANAGE_THREADS holders, a public one for whoever reads its parent."""
    secret, open_ = private(client, room), public(client, room)

    def readable(actor):
        with resources.session() as session:
            return AccessService(session).readable_channels(room.guild_id, actor.user).readable

    assert {int(secret["id"]), int(open_["id"]), room.channel_id} <= readable(room.member)
    assert {int(secret["id"]), int(open_["id"])} <= readable(room.mod)
    assert int(secret["id"]) not in readable(room.plain) and int(open_["id"]) in readable(room.plain)


def test_thread_membership_changes_the_metadata_version(client, room, resources):
    """Who sees a private thread depends on thread_members, so its writes bump the version workers check their
    kept permissions against (migration 0011's triggers)."""
    thread = private(client, room)
    before = version(resources.engine)
    no_content(client.put(f"/api/v10/channels/{thread['id']}/thread-members/{room.plain.id}",
                          headers=room.member.headers))
    after_join = version(resources.engine)
    assert after_join > before
    no_content(client.delete(f"/api/v10/channels/{thread['id']}/thread-members/{room.plain.id}",
                             headers=room.mod.headers))
    assert version(resources.engine) > after_join
    # The removed user no longer sees it, whatever a worker kept.
    error(get(client, thread["id"], room.plain), 403, 50001)


def test_a_post_whose_message_is_refused_leaves_no_thread(client, room, make, published):
    forum_id = make.channel(room.guild_id, "forum", type_=15)
    published.clear()
    refused = client.post(f"/api/v10/channels/{forum_id}/threads",
                          json={"name": "x", "message": {"content": "x", "attachments": [{"id": 0}]}},
                          headers=room.plain.headers)
    assert 400 <= refused.status_code < 500, refused.get_data(as_text=True)
    active = json_body(client.get(f"/api/v10/guilds/{room.guild_id}/threads/active", headers=room.owner.headers), 200)
    assert active["threads"] == []
    assert [t for t, _ in published.dispatches()] == ["THREAD_CREATE", "THREAD_DELETE"]


def test_a_forum_post_takes_files_in_a_multipart_body(client, room, make):
    forum_id = make.channel(room.guild_id, "forum", type_=15)
    payload = {"name": "with a file", "message": {"content": "see attached",
                                                  "attachments": [{"id": 0, "filename": "notes.txt"}]}}
    response = client.post(f"/api/v10/channels/{forum_id}/threads", content_type="multipart/form-data",
                           data={"payload_json": json.dumps(payload), "files[0]": (io.BytesIO(b"hello"), "notes.txt")},
                           headers=room.owner.headers)
    post = json_body(response, 201)
    (attachment,) = post["message"]["attachments"]
    assert (attachment["filename"], attachment["size"]) == ("notes.txt", 5)
    fetched = json_body(client.get(f"/api/v10/channels/{post['id']}/messages/{post['id']}",
                                   headers=room.member.headers), 200)
    assert [a["filename"] for a in fetched["attachments"]] == ["notes.txt"]


def test_adding_to_a_private_thread_tells_the_added_user(client, room, published):
    thread = private(client, room)
    published.clear()
    no_content(client.put(f"/api/v10/channels/{thread['id']}/thread-members/{room.plain.id}",
                          headers=room.member.headers))
    events = published.dispatches()
    assert [t for t, _ in events] == ["THREAD_MEMBERS_UPDATE", "THREAD_MEMBER_UPDATE", "THREAD_CREATE"]
    assert events[1][1]["user_id"] == events[2][1]["member"]["user_id"] == str(room.plain.id)
    assert "newly_created" not in events[2][1] and events[2][1]["member_count"] == 2


def test_leaving_the_guild_leaves_its_threads(client, room, published):
    thread, other = private(client, room), public(client, room)
    for thread_id in (thread["id"], other["id"]):
        no_content(client.put(f"/api/v10/channels/{thread_id}/thread-members/{room.plain.id}",
                              headers=room.member.headers))
    assert json_body(get(client, thread["id"], room.member), 200)["member_count"] == 2
    published.clear()
    no_content(client.delete(f"/api/v10/guilds/{room.guild_id}/members/{room.plain.id}", headers=room.owner.headers))
    # Each thread says who left it, as when leaving by hand.
    updates = sorted((d["id"], d["member_count"], d["removed_member_ids"]) for t, d in published.dispatches()
                     if t == "THREAD_MEMBERS_UPDATE")
    assert updates == sorted((t["id"], 1, [str(room.plain.id)]) for t in (thread, other))
    assert json_body(get(client, thread["id"], room.member), 200)["member_count"] == 1
    members = json_body(client.get(f"/api/v10/channels/{thread['id']}/thread-members", headers=room.member.headers),
                        200)
    assert [m["user_id"] for m in members] == [str(room.member.id)]


def test_a_forum_posts_first_message_is_not_counted_nor_uncounted(client, room, make):
    """Discord leaves a post's first message (the thread's id) out of ``message_count``: deleting it, alone, in a
    bulk delete or by a ban's purge, leaves the count alone."""
    forum_id = make.channel(room.guild_id, "forum", type_=15)

    def post(actor):
        created = json_body(client.post(f"/api/v10/channels/{forum_id}/threads",
                                        json={"name": "a post", "message": {"content": "first"}},
                                        headers=actor.headers), 201)
        replies = [json_body(send(client, created["id"], room.member, text), 200)["id"] for text in ("a", "b")]
        return created["id"], replies

    def count(thread_id):
        return json_body(get(client, thread_id, room.owner), 200)["message_count"]

    alone, replies = post(room.member)
    assert count(alone) == 2
    no_content(client.delete(f"/api/v10/channels/{alone}/messages/{alone}", headers=room.member.headers))
    assert count(alone) == 2
    no_content(client.delete(f"/api/v10/channels/{alone}/messages/{replies[0]}", headers=room.member.headers))
    assert count(alone) == 1
    bulk, replies = post(room.member)
    no_content(client.post(f"/api/v10/channels/{bulk}/messages/bulk-delete",
                           json={"messages": [bulk, replies[0]]}, headers=room.owner.headers))
    assert count(bulk) == 1
    purged, _ = post(room.plain)
    no_content(client.put(f"/api/v10/guilds/{room.guild_id}/bans/{room.plain.id}",
                          json={"delete_message_seconds": 3600}, headers=room.owner.headers))
    error(client.get(f"/api/v10/channels/{purged}/messages/{purged}", headers=room.owner.headers), 404, 10008)
    assert count(purged) == 2
