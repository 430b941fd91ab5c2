"""Pins: the paginated routes, /channels/{c}/messages/pins, and the legacy /channels/{c}/pins."""
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest

from app import create_app
from app.auth.permissions import Permission
from app.ids import snowflake_from_ms
from app.messages.base import Message
from tests.support.factories import Actor, Factory
from tests.support.responses import error, field_error_codes, json_body, no_content

MEMBER_PERMISSIONS = Permission.VIEW_CHANNEL | Permission.SEND_MESSAGES | Permission.READ_MESSAGE_HISTORY


@dataclass
class Room:
    """A guild channel with its owner, a plain member, a pinner (PIN_MESSAGES) and a moderator who has only
    MANAGE_MESSAGES, which no longer lets anyone pin."""

    owner: Actor
    member: Actor
    pinner: Actor
    moderator: Actor
    guild_id: int
    channel_id: int

    def send(self, client, content="pin me"):
        response = client.post(f"/api/v10/channels/{self.channel_id}/messages", json={"content": content},
                               headers=self.member.headers)
        return json_body(response, 200)["id"]


@pytest.fixture
def room(make):
    return make_room(make)


def make_room(make):
    owner, member, pinner, moderator = (make.actor(name) for name in ("owner", "member", "pinner", "moderator"))
    guild_id, channel_id = make.guild(owner, everyone=MEMBER_PERMISSIONS)
    make.member(guild_id, member)
    make.member(guild_id, pinner, roles=[make.role(guild_id, Permission.PIN_MESSAGES, name="pinners")])
    make.member(guild_id, moderator, roles=[make.role(guild_id, Permission.MANAGE_MESSAGES, name="moderators")])
    return Room(owner, member, pinner, moderator, guild_id, channel_id)


def pin(client, room, message_id, actor=None, legacy=False):
    path = "pins" if legacy else "messages/pins"
    return client.put(f"/api/v10/channels/{room.channel_id}/{path}/{message_id}",
                      headers=(actor or room.pinner).headers)


def unpin(client, room, message_id, actor=None, legacy=False):
    path = "pins" if legacy else "messages/pins"
    return client.delete(f"/api/v10/channels/{room.channel_id}/{path}/{message_id}",
                         headers=(actor or room.pinner).headers)


def pin_page(client, room, actor=None, **params):
    response = client.get(f"/api/v10/channels/{room.channel_id}/messages/pins", query_string=params,
                          headers=(actor or room.member).headers)
    return json_body(response, 200)


def pinned_ids(client, room, actor=None, **params):
    return [item["message"]["id"] for item in pin_page(client, room, actor, **params)["items"]]


def legacy_pinned_ids(client, room, actor=None):
    response = client.get(f"/api/v10/channels/{room.channel_id}/pins", headers=(actor or room.member).headers)
    return [m["id"] for m in json_body(response, 200)]


def fetch(client, room, message_id):
    response = client.get(f"/api/v10/channels/{room.channel_id}/messages/{message_id}", headers=room.owner.headers)
    return json_body(response, 200)


def test_pinned_message_is_listed_with_its_pin_time_and_marked_pinned(client, room):
    message_id = room.send(client)
    before_pin = datetime.now(timezone.utc)
    no_content(pin(client, room, message_id))
    page = pin_page(client, room)
    assert page["has_more"] is False
    [item] = page["items"]
    assert set(item) == {"pinned_at", "message"}
    assert item["message"] == fetch(client, room, message_id)
    assert item["message"]["pinned"] is True
    pinned_at = datetime.fromisoformat(item["pinned_at"])
    assert item["pinned_at"].endswith("+00:00") and len(item["pinned_at"]) == 32
    assert before_pin - timedelta(seconds=1) <= pinned_at <= datetime.now(timezone.utc)


def test_unpinning_removes_the_pin_and_the_flag(client, room):
    message_id = room.send(client)
    no_content(pin(client, room, message_id))
    no_content(unpin(client, room, message_id))
    assert pin_page(client, room) == {"items": [], "has_more": False}
    assert fetch(client, room, message_id)["pinned"] is False
    no_content(unpin(client, room, message_id))


def test_pins_are_listed_newest_pinned_first_not_by_message_id(client, room):
    first, second, third = (room.send(client, str(n)) for n in range(3))
    for message_id in (second, third, first):
        no_content(pin(client, room, message_id))
    assert pinned_ids(client, room) == [first, third, second]
    assert legacy_pinned_ids(client, room) == [first, third, second]


def test_pinning_again_keeps_the_first_pin_time(client, room):
    first, second = room.send(client, "first"), room.send(client, "second")
    no_content(pin(client, room, first))
    no_content(pin(client, room, second))
    pinned_at = {i["message"]["id"]: i["pinned_at"] for i in pin_page(client, room)["items"]}
    no_content(pin(client, room, first))
    assert pinned_ids(client, room) == [second, first]
    assert {i["message"]["id"]: i["pinned_at"] for i in pin_page(client, room)["items"]} == pinned_at


def test_paging_with_the_last_pinned_at_as_before_repeats_nothing(client, room):
    message_ids = [room.send(client, str(n)) for n in range(5)]
    for message_id in message_ids:
        no_content(pin(client, room, message_id))
    newest_first = message_ids[::-1]

    def pages(limit):
        collected, before = [], None
        while True:
            params = {"limit": limit} if before is None else {"limit": limit, "before": before}
            page = pin_page(client, room, **params)
            collected.append(([i["message"]["id"] for i in page["items"]], page["has_more"]))
            if not page["has_more"]:
                return collected
            before = page["items"][-1]["pinned_at"]  # verbatim, as discord.py does

    assert pages(2) == [(newest_first[:2], True), (newest_first[2:4], True), (newest_first[4:], False)]
    # When the last page is exactly full, has_more already says there is nothing after it.
    assert pages(5) == [(newest_first, False)]
    assert pages(50) == [(newest_first, False)]


def test_before_accepts_any_iso_time_and_offsets(client, room):
    message_id = room.send(client)
    no_content(pin(client, room, message_id))
    pinned_at = datetime.fromisoformat(pin_page(client, room)["items"][0]["pinned_at"])
    later, earlier = pinned_at + timedelta(seconds=1), pinned_at - timedelta(seconds=1)
    assert pinned_ids(client, room, before=later.isoformat()) == [message_id]
    assert pinned_ids(client, room, before=earlier.isoformat()) == []
    in_new_york = later.astimezone(timezone(timedelta(hours=-5))).isoformat()
    assert pinned_ids(client, room, before=in_new_york) == [message_id]
    naive_utc = later.replace(tzinfo=None).isoformat()
    assert pinned_ids(client, room, before=naive_utc) == [message_id]
    # Times whose UTC equivalent lies outside years 1..9999 are still times: before, or after, every pin.
    assert pinned_ids(client, room, before="0001-01-01T00:00:00+01:00") == []
    assert pinned_ids(client, room, before="9999-12-31T23:59:59-01:00") == [message_id]


def test_pin_list_query_errors(client, room):
    for limit, code in (("0", "NUMBER_TYPE_MIN"), ("51", "NUMBER_TYPE_MAX"), ("all", "NUMBER_TYPE_COERCE")):
        response = client.get(f"/api/v10/channels/{room.channel_id}/messages/pins", query_string={"limit": limit},
                              headers=room.member.headers)
        assert field_error_codes(response, "limit") == [code]
    response = client.get(f"/api/v10/channels/{room.channel_id}/messages/pins", query_string={"before": "yesterday"},
                          headers=room.member.headers)
    assert field_error_codes(response, "before") == ["DATE_TYPE_PARSE"]


def test_legacy_routes_pin_and_unpin_and_list_an_array(client, room):
    message_id = room.send(client)
    no_content(pin(client, room, message_id, legacy=True))
    response = client.get(f"/api/v10/channels/{room.channel_id}/pins", headers=room.member.headers)
    assert json_body(response, 200) == [fetch(client, room, message_id)]
    assert pinned_ids(client, room) == [message_id]
    no_content(unpin(client, room, message_id, legacy=True))
    assert legacy_pinned_ids(client, room) == []


def test_pinning_needs_pin_messages_and_manage_messages_is_not_enough(client, room):
    message_id = room.send(client)
    for legacy in (False, True):
        for actor in (room.member, room.moderator):
            error(pin(client, room, message_id, actor, legacy=legacy), 403, 50013)
    assert pinned_ids(client, room) == []
    no_content(pin(client, room, message_id, room.owner))
    for legacy in (False, True):
        error(unpin(client, room, message_id, room.moderator, legacy=legacy), 403, 50013)
    assert pinned_ids(client, room) == [message_id]


def test_pinning_an_unknown_message_or_one_of_another_channel_is_10008(client, make, room):
    other_channel = make.channel(room.guild_id, "elsewhere")
    response = client.post(f"/api/v10/channels/{other_channel}/messages", json={"content": "there"},
                           headers=room.owner.headers)
    elsewhere = json_body(response, 200)["id"]
    for message_id in ("4242", elsewhere):
        error(pin(client, room, message_id), 404, 10008)
        error(unpin(client, room, message_id), 404, 10008)
    error(client.put(f"/api/v10/channels/4242/messages/pins/{elsewhere}", headers=room.owner.headers), 404, 10003)


def test_system_messages_cannot_be_pinned(client, resources, room):
    pin_notice = snowflake_from_ms(int(time.time() * 1000) - 60_000)
    resources.message_store.create_message(Message(id=pin_notice, channel_id=room.channel_id,
                                                   author_id=room.owner.id, type=6))
    error(pin(client, room, pin_notice), 400, 50021)
    assert pinned_ids(client, room) == []


def test_deleted_message_leaves_the_pin_list(client, room):
    kept, deleted = room.send(client, "kept"), room.send(client, "deleted")
    for message_id in (kept, deleted):
        no_content(pin(client, room, message_id))
    no_content(client.delete(f"/api/v10/channels/{room.channel_id}/messages/{deleted}", headers=room.member.headers))
    assert pinned_ids(client, room) == [kept]
    assert legacy_pinned_ids(client, room) == [kept]


def test_without_read_message_history_no_pins_are_listed(client, make, room):
    no_content(pin(client, room, room.send(client)))
    make.overwrite(room.channel_id, room.member.id, 1, deny=Permission.READ_MESSAGE_HISTORY)
    assert pin_page(client, room) == {"items": [], "has_more": False}
    assert legacy_pinned_ids(client, room) == []


def test_without_view_channel_pins_are_403(client, make, room):
    make.overwrite(room.channel_id, room.member.id, 1, deny=Permission.VIEW_CHANNEL)
    for path in ("messages/pins", "pins"):
        response = client.get(f"/api/v10/channels/{room.channel_id}/{path}", headers=room.member.headers)
        error(response, 403, 50001)


def test_pin_and_unpin_publish_channel_pins_updated_once(client, room, published):
    message_id = room.send(client)
    published.clear()
    pin(client, room, message_id)
    pin(client, room, message_id)  # already pinned: nothing changes, nothing to announce
    unpin(client, room, message_id)
    where = {"channel_id": str(room.channel_id), "guild_id": str(room.guild_id)}
    [pinned, unpinned] = published.dispatches()
    assert pinned[0] == unpinned[0] == "CHANNEL_PINS_UPDATE"
    assert pinned[1]["last_pin_timestamp"] is not None and pinned[1].items() >= where.items()
    assert unpinned[1] == {**where, "last_pin_timestamp": None}, "no pin is left"


@pytest.mark.usefixtures("resources")  # the second app shares the database, which ``resources`` empties afterwards
def test_pinning_past_the_channel_limit_is_30003(database):
    """The limit comes from settings (max_pins_per_channel); an app of its own sets it to 2 for this test."""
    small_limit_app = create_app(database.replace(max_pins_per_channel=2))
    try:
        client = small_limit_app.test_client()
        room = make_room(Factory(small_limit_app.extensions["chatstore"]))
        first, second, third = (room.send(client, str(n)) for n in range(3))
        no_content(pin(client, room, first))
        no_content(pin(client, room, second))
        error(pin(client, room, third), 400, 30003)
        assert pinned_ids(client, room) == [second, first]
        no_content(pin(client, room, second))  # re-pinning a pinned message adds nothing, so it is allowed
        no_content(unpin(client, room, first))
        no_content(pin(client, room, third))
        assert pinned_ids(client, room) == [third, second]
    finally:
        small_limit_app.extensions["chatstore"].close()
