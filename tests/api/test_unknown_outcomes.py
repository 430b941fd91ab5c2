"""Writes to a store apart from the database (as ScyllaDB is) that fail and may have landed: their events wait in
the outbox, unconfirmed, and the relay publishes them only if the store shows the write, once it can no longer be
in flight."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.domain import UserSnapshot
from app.events.base import event_from_bytes
from app.events.relay import EventRelay
from app.events.sql import SqlEventBus
from app.messages.base import StoreDecorator, StoreUnavailable
from app.services.channel_writes import ChannelWrites, StoreChecks
from app.services.dispatch import Dispatch
from app.services.messages import MessageLookup, MessageService
from models.events import event_outbox
from tests.support.events import Published


class Apart(StoreDecorator):
    """The store as ChannelWrites sees a ScyllaDB store: not part of the metadata transaction. ``failing`` names
    writes that raise StoreUnavailable, after landing when ``land`` is set."""

    def __init__(self, inner):
        super().__init__(inner)
        self.failing: set[str] = set()
        self.land = True
        self.down = False

    def joins_transactions_of(self, engine) -> bool:
        return False

    def call(self, operation, method, *args, **kwargs):
        if self.down:
            raise StoreUnavailable("the store is down")
        if operation not in self.failing:
            return method(*args, **kwargs)
        if self.land:
            method(*args, **kwargs)
        raise StoreUnavailable("timed out")


@pytest.fixture
def setup(resources, make):
    owner = make.actor("owner")
    guild_id, channel_id = make.guild(owner)
    store = Apart(resources.message_store)
    service = MessageService(MessageLookup(resources.session(), store), resources.ids,
                             ChannelWrites(resources.engine, store), Dispatch(resources.ids))
    bus = SqlEventBus(resources.engine, 4)
    relay = EventRelay(resources.engine, bus, confirm=StoreChecks(store), unconfirmed_grace_seconds=0)
    assert relay.leadership.acquire()
    actor = UserSnapshot(id=owner.id, username="owner", global_name=None, avatar=None, bot=True)
    yield store, service, relay, bus, actor, channel_id
    relay.leadership.release()


def relayed(bus) -> list:
    return [event for partition in range(bus.partitions) for event in bus.read(partition, None, 100)]


def test_a_failed_create_that_landed_is_published_and_one_that_did_not_is_dropped(setup, resources):
    store, service, relay, bus, actor, channel_id = setup
    published = Published(resources.engine)
    store.failing.add("create_message")

    with pytest.raises(StoreUnavailable):
        service.create_message(actor, channel_id, {"content": "landed anyway"})
    store.land = False
    with pytest.raises(StoreUnavailable):
        service.create_message(actor, channel_id, {"content": "never landed"})
    assert [e.data["content"] for e in published] == ["landed anyway", "never landed"], "both wait, unconfirmed"

    relay.relay_once()
    assert [e.data["content"] for e in relayed(bus)] == ["landed anyway"]
    assert relay.relay_once() == 0, "the dropped one is gone from the outbox"


def test_an_unconfirmed_event_waits_while_the_store_cannot_tell(setup):
    store, service, relay, bus, actor, channel_id = setup
    store.failing.add("create_message")
    with pytest.raises(StoreUnavailable):
        service.create_message(actor, channel_id, {"content": "unknown for now"})
    store.down = True
    assert relay.relay_once() == 0 and relayed(bus) == []
    store.down = False
    assert relay.relay_once() == 1
    assert [e.data["content"] for e in relayed(bus)] == ["unknown for now"]


def test_an_unconfirmed_edit_is_checked_against_what_it_would_have_written(setup):
    store, service, relay, bus, actor, channel_id = setup
    sent = service.create_message(actor, channel_id, {"content": "draft"}).messages[0]
    relay.relay_once()
    store.failing.add("update_message")
    with pytest.raises(StoreUnavailable):
        service.edit_message(actor, channel_id, sent.id, {"content": "final"})
    relay.relay_once()
    store.land = False
    with pytest.raises(StoreUnavailable):
        service.edit_message(actor, channel_id, sent.id, {"content": "never written"})
    relay.relay_once()
    assert [(e.type, e.data["content"]) for e in relayed(bus)] == [("MESSAGE_CREATE", "draft"),
                                                                   ("MESSAGE_UPDATE", "final")]


def test_an_unconfirmed_event_waits_out_the_grace_without_holding_back_later_ones(setup, resources):
    store, service, _relay, bus, actor, channel_id = setup
    patient = EventRelay(resources.engine, bus, confirm=StoreChecks(store), unconfirmed_grace_seconds=30)
    _relay.leadership.release()
    assert patient.leadership.acquire()
    try:
        store.failing.add("create_message")
        with pytest.raises(StoreUnavailable):
            service.create_message(actor, channel_id, {"content": "maybe still in flight"})
        store.failing.clear()
        service.create_message(actor, channel_id, {"content": "acknowledged"})
        assert patient.relay_once() == 1
        assert [e.data["content"] for e in relayed(bus)] == ["acknowledged"]
        with resources.engine.connect() as connection:
            waiting = connection.execute(select(event_outbox.c.payload)).scalars().all()
        assert [event_from_bytes(payload).data["content"] for payload in waiting] == ["maybe still in flight"]
    finally:
        patient.leadership.release()
