"""The worker's read cache (app.read_cache): what it keeps never answers a request with less than the database
holds, whichever process made the change, and pages it keeps cost the message store nothing."""
from __future__ import annotations

import base64
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, text, update

from app import create_app
from app.auth.permissions import Permission
from app.auth.tokens import revoke_token
from app.events.base import Event
from app.messages.base import Message, StoreDecorator, StoreUnavailable
from app.messages.sql import SqlMessageStore
from app.services.channel_writes import ChannelWrites
from models import Member
from tests.support.responses import error, json_body

MEMBER_PERMISSIONS = Permission.VIEW_CHANNEL | Permission.SEND_MESSAGES | Permission.READ_MESSAGE_HISTORY


@pytest.fixture
def room(make):
    owner, member = make.actor("owner"), make.actor("member")
    guild_id, channel_id = make.guild(owner, everyone=MEMBER_PERMISSIONS)
    make.member(guild_id, member)
    return owner, member, guild_id, channel_id


@pytest.fixture
def other_process(resources):
    """A connection of its own, as a psql session or another host's worker would write."""
    engine = create_engine(resources.settings.database_url)
    yield engine
    engine.dispose()


def page(client, actor, channel_id, **query):
    arguments = "&".join(f"{name}={value}" for name, value in {"limit": 50, **query}.items())
    return client.get(f"/api/v10/channels/{channel_id}/messages?{arguments}", headers=actor.headers)


def send(client, actor, channel_id, content):
    return json_body(client.post(f"/api/v10/channels/{channel_id}/messages", json={"content": content},
                                 headers=actor.headers), 200)


def test_a_permission_taken_away_elsewhere_applies_to_the_next_request(client, room, other_process):
    _owner, member, guild_id, channel_id = room
    assert page(client, member, channel_id).status_code == 200
    with other_process.begin() as connection:
        connection.execute(text("UPDATE roles SET permissions = 0 WHERE id = :id"), {"id": guild_id})
    error(page(client, member, channel_id), 403, 50001)


def test_a_token_revoked_elsewhere_is_refused_at_once(client, room, resources):
    owner = room[0]
    assert client.get("/api/v10/users/@me", headers=owner.headers).status_code == 200
    token_id = int(base64.urlsafe_b64decode(owner.token.split(".")[0] + "=="))
    with resources.session() as session:
        assert revoke_token(session, token_id)
        session.commit()
    error(client.get("/api/v10/users/@me", headers=owner.headers), 401, 0)


def test_a_renamed_author_shows_in_the_next_page(client, room, other_process):
    owner, member, _guild_id, channel_id = room
    send(client, member, channel_id, "hello")
    assert json_body(page(client, owner, channel_id), 200)[0]["author"]["username"] == "member"
    with other_process.begin() as connection:
        connection.execute(text("UPDATE users SET username = 'renamed' WHERE id = :id"), {"id": member.id})
    assert json_body(page(client, owner, channel_id), 200)[0]["author"]["username"] == "renamed"


def test_a_message_written_through_another_worker_is_in_the_next_page(client, room, resources):
    owner, member, _guild_id, channel_id = room
    send(client, member, channel_id, "first")
    assert [m["content"] for m in json_body(page(client, owner, channel_id), 200)] == ["first"]

    other_worker = create_app(resources.settings)
    try:
        send(other_worker.test_client(), member, channel_id, "second")
    finally:
        other_worker.extensions["chatstore"].close()
    assert [m["content"] for m in json_body(page(client, owner, channel_id), 200)] == ["second", "first"]


def test_a_kept_page_is_answered_in_the_very_bytes_the_store_path_answers(client, room, resources):
    owner, member, _guild_id, channel_id = room
    first = send(client, member, channel_id, f"hello <@{owner.id}>")
    json_body(client.post(f"/api/v10/channels/{channel_id}/messages", headers=owner.headers, json={
        "content": "a reply", "message_reference": {"message_id": first["id"]}}), 200)
    path = f"/api/v10/channels/{channel_id}/messages/{first['id']}/reactions/%F0%9F%91%8D/@me"
    assert client.put(path, headers=owner.headers).status_code == 204
    uncached = create_app(resources.settings.replace(read_cache_pages=0))
    try:
        for viewer in (owner, member, owner):
            kept = page(client, viewer, channel_id)
            assert kept.status_code == 200
            assert kept.data == page(uncached.test_client(), viewer, channel_id).data
        send(client, member, channel_id, "no reactions on this page")
        for viewer in (owner, member):
            kept = page(client, viewer, channel_id, limit=1)
            assert kept.data == page(uncached.test_client(), viewer, channel_id, limit=1).data
    finally:
        uncached.extensions["chatstore"].close()


def test_an_edit_or_a_delete_is_in_the_next_page_of_a_kept_one(client, room):
    owner, member, _guild_id, channel_id = room
    message = send(client, member, channel_id, "before")
    assert [m["content"] for m in json_body(page(client, owner, channel_id), 200)] == ["before"]
    json_body(client.patch(f"/api/v10/channels/{channel_id}/messages/{message['id']}", json={"content": "after"},
                           headers=member.headers), 200)
    assert [m["content"] for m in json_body(page(client, owner, channel_id), 200)] == ["after"]
    deleted = client.delete(f"/api/v10/channels/{channel_id}/messages/{message['id']}", headers=member.headers)
    assert deleted.status_code == 204
    assert json_body(page(client, owner, channel_id), 200) == []


def test_each_viewer_sees_their_own_reactions_on_a_kept_page(client, room):
    owner, member, _guild_id, channel_id = room
    message = send(client, member, channel_id, "react to me")
    path = f"/api/v10/channels/{channel_id}/messages/{message['id']}/reactions/%F0%9F%91%8D/@me"
    assert client.put(path, headers=owner.headers).status_code == 204
    for viewer, me in ((owner, True), (member, False), (owner, True)):
        reaction = json_body(page(client, viewer, channel_id), 200)[0]["reactions"][0]
        assert (reaction["count"], reaction["me"]) == (1, me)


def test_a_timeout_that_ends_gives_the_permissions_back_without_any_write(client, room, other_process):
    _owner, member, guild_id, channel_id = room
    until = datetime.now(timezone.utc) + timedelta(seconds=1)
    with other_process.begin() as connection:
        connection.execute(update(Member).where(Member.guild_id == guild_id, Member.user_id == member.id)
                           .values(communication_disabled_until=until))
    refused = client.post(f"/api/v10/channels/{channel_id}/messages", json={"content": "muted"},
                          headers=member.headers)
    error(refused, 403, 50013)
    time.sleep(max(0.0, (until - datetime.now(timezone.utc)).total_seconds()) + 0.05)
    send(client, member, channel_id, "unmuted")


def test_a_kept_page_costs_the_store_nothing_until_the_channel_changes(client, room, resources, monkeypatch):
    assert resources.read_cache.keeps_pages, "the suite runs with COALESCE_READS on"
    owner, member, _guild_id, channel_id = room
    send(client, member, channel_id, "one")
    reads = []
    original = resources.message_store.list_messages

    def counted(*args, **kwargs):
        reads.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(resources.message_store, "list_messages", counted)
    assert len(json_body(page(client, owner, channel_id), 200)) == 1
    assert len(json_body(page(client, owner, channel_id), 200)) == 1
    assert len(json_body(page(client, member, channel_id), 200)) == 1
    assert len(reads) == 1, "the same page, read again with nothing changed, comes from the worker's memory"
    send(client, member, channel_id, "two")
    assert len(json_body(page(client, owner, channel_id), 200)) == 2
    assert len(reads) == 2


def test_a_write_whose_version_bump_fails_is_reported_unavailable(resources, room, tmp_path):
    channel_id = room[3]
    no_metadata = create_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    store = SqlMessageStore(resources.engine)
    writes = ChannelWrites(no_metadata, store)
    message = Message(id=resources.ids.next_id(), channel_id=channel_id, author_id=room[1].id, content="landed")
    with pytest.raises(StoreUnavailable):
        writes.apply(channel_id, lambda: store.create_message(message), created=message.id)
    no_metadata.dispose()
    assert resources.message_store.get_message(channel_id, message.id) is not None, "the write itself went through"


class ApartFromTheDatabase(StoreDecorator):
    """The store as a ScyllaDB store is to ChannelWrites: its writes are not part of the metadata transaction."""

    def joins_transactions_of(self, engine) -> bool:
        return False


def channel_version(resources, channel_id) -> int:
    with resources.engine.connect() as connection:
        return connection.execute(text("SELECT messages_version FROM channels WHERE id = :id"),
                                  {"id": channel_id}).scalar_one()


def timed_out():
    raise StoreUnavailable("timed out; the write may have landed")


def test_a_failed_write_to_a_store_apart_still_moves_the_channel_version(resources, room):
    """A write that failed may still have landed, so pages kept of the channel must not outlive it."""
    channel_id = room[3]
    before = channel_version(resources, channel_id)
    writes = ChannelWrites(resources.engine, ApartFromTheDatabase(resources.message_store))
    with pytest.raises(StoreUnavailable, match="may have landed"):
        writes.apply(channel_id, timed_out)
    assert channel_version(resources, channel_id) == before + 1


def test_a_failed_write_in_the_shared_transaction_leaves_nothing(resources, room, published):
    """The SQL store writes in the channel's transaction: a failed write rolls back with its bookkeeping."""
    channel_id = room[3]
    before = channel_version(resources, channel_id)
    message = Message(id=resources.ids.next_id(), channel_id=channel_id, author_id=room[1].id, content="rolled back")
    event = Event(id=resources.ids.next_id(), type="MESSAGE_CREATE", guild_id=room[2], channel_id=channel_id)

    def lands_then_fails():
        resources.message_store.create_message(message)
        timed_out()

    with pytest.raises(StoreUnavailable):
        ChannelWrites(resources.engine, resources.message_store).apply(
            channel_id, lands_then_fails, created=message.id, events=lambda _: [event])
    assert resources.message_store.get_message(channel_id, message.id) is None
    assert channel_version(resources, channel_id) == before
    assert len(published) == 0
