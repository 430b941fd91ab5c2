"""CoalescingMessageStore over the real SQL store on SQLite, with calls slowed down so that readers overlap."""
from __future__ import annotations

import collections
from datetime import datetime, timezone

import gevent
import pytest
from gevent.pool import Group

from app.extensions import create_db_engine
from app.messages.base import Message, MessageStore, StoreDecorator, StoreUnavailable
from app.messages.coalescing import CoalescingMessageStore
from app.messages.sql import SqlMessageStore
from tests.support.databases import empty_tables, migrated_database

CHANNEL = 1_000_001
OTHER_CHANNEL = 1_000_002
AUTHOR, VIEWER, OTHER_VIEWER = 2_000_001, 2_000_002, 2_000_003
READERS = 20
#: Long enough that every reader spawned together joins the first one's call.
CALL_DELAY = 0.05


SLOW_READS = ("list_messages", "reaction_counts")


class SlowCountingStore(StoreDecorator):
    """Delegates to a real store, counting calls by method; the coalesced reads take CALL_DELAY longer.

    ``failing`` maps method names to the error they raise instead of answering.
    """

    def __init__(self, store: MessageStore):
        super().__init__(store)
        self.calls: collections.Counter[str] = collections.Counter()
        self.failing: dict[str, Exception] = {}

    def call(self, operation, method, *args, **kwargs):
        self.calls[operation] += 1
        if operation in SLOW_READS:
            gevent.sleep(CALL_DELAY)
        if operation in self.failing:
            raise self.failing[operation]
        return method(*args, **kwargs)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    with migrated_database("sqlite", tmp_path_factory.mktemp("coalescing")) as settings:
        engine = create_db_engine(settings)
        yield engine
        engine.dispose()


@pytest.fixture
def backend(engine):
    yield SlowCountingStore(SqlMessageStore(engine))
    empty_tables(engine)


@pytest.fixture
def store(backend):
    return CoalescingMessageStore(backend)


def message(message_id: int, channel_id: int = CHANNEL) -> Message:
    return Message(id=message_id, channel_id=channel_id, author_id=AUTHOR, content=f"#{message_id}")


def concurrently(count: int, call):
    group = Group()
    readers = [group.spawn(call) for _ in range(count)]
    group.join()
    return readers


def test_concurrent_identical_reads_share_one_call(store, backend):
    store.layer(SqlMessageStore).create_message(message(1 << 40))
    readers = concurrently(READERS, lambda: store.list_messages(CHANNEL, limit=50))
    assert backend.calls["list_messages"] == 1
    assert all(reader.successful() and [m.id for m in reader.value] == [1 << 40] for reader in readers)


def test_each_reader_gets_its_own_list(store):
    store.layer(SqlMessageStore).create_message(message(1 << 40))
    first, second = (reader.value for reader in concurrently(2, lambda: store.list_messages(CHANNEL)))
    first.clear()
    assert [m.id for m in second] == [1 << 40]


def test_different_reads_are_not_shared(store, backend):
    group = Group()
    group.spawn(store.list_messages, CHANNEL, limit=50)
    group.spawn(store.list_messages, CHANNEL, limit=10)
    group.spawn(store.list_messages, CHANNEL, before=1 << 41, limit=50)
    group.spawn(store.list_messages, OTHER_CHANNEL, limit=50)
    group.join(raise_error=True)
    assert backend.calls["list_messages"] == 4


def test_sequential_reads_are_not_cached(store, backend):
    store.list_messages(CHANNEL)
    store.list_messages(CHANNEL)
    assert backend.calls["list_messages"] == 2


def test_a_write_acknowledged_during_a_flight_starts_a_new_one(store, backend):
    early = gevent.spawn(store.list_messages, CHANNEL)
    gevent.sleep(0)  # the early reader's call is now in flight
    store.create_message(message(1 << 40))
    late = concurrently(READERS, lambda: store.list_messages(CHANNEL))
    early.join()
    assert backend.calls["list_messages"] == 2
    assert all([m.id for m in reader.value] == [1 << 40] for reader in late)


def test_a_write_to_another_channel_does_not_split_a_flight(store, backend):
    first = gevent.spawn(store.list_messages, CHANNEL)
    gevent.sleep(0)
    store.create_message(message(1 << 40, channel_id=OTHER_CHANNEL))
    second = gevent.spawn(store.list_messages, CHANNEL)
    gevent.joinall([first, second], raise_error=True)
    assert backend.calls["list_messages"] == 1


@pytest.mark.parametrize("write", [
    lambda store: store.update_message(CHANNEL, 1 << 40, {"content": "edited"}),
    lambda store: store.delete_messages(CHANNEL, [1 << 40]),
    lambda store: store.add_reaction(CHANNEL, 1 << 40, "👍", VIEWER),
    lambda store: store.pin_message(CHANNEL, 1 << 40, datetime.now(timezone.utc)),
    lambda store: store.delete_channel(CHANNEL),
])
def test_every_write_method_splits_flights(store, backend, write):
    store.layer(SqlMessageStore).create_message(message(1 << 40))
    early = gevent.spawn(store.list_messages, CHANNEL)
    gevent.sleep(0)
    write(store)
    store.list_messages(CHANNEL)
    early.join()
    assert backend.calls["list_messages"] == 2


def test_a_failed_write_still_splits_flights(store, backend):
    """A write that timed out may have been applied all the same."""
    early = gevent.spawn(store.list_messages, CHANNEL)
    gevent.sleep(0)
    backend.failing["create_message"] = StoreUnavailable()
    with pytest.raises(StoreUnavailable):
        store.create_message(message(1 << 40))
    store.list_messages(CHANNEL)
    early.join()
    assert backend.calls["list_messages"] == 2


def test_errors_reach_every_waiter_and_are_not_remembered(store, backend):
    backend.failing["list_messages"] = StoreUnavailable("down")
    readers = concurrently(READERS, lambda: store.list_messages(CHANNEL))
    assert backend.calls["list_messages"] == 1
    assert all(isinstance(reader.exception, StoreUnavailable) for reader in readers)
    del backend.failing["list_messages"]
    assert store.list_messages(CHANNEL) == []
    assert backend.calls["list_messages"] == 2


def test_no_reader_misses_a_write_acknowledged_before_it_asked(store):
    """Readers and writers interleave; every page holds every message whose write returned before the read began
    (the channel stays under one page, so "holds" is exact)."""
    acknowledged: set[int] = set()
    violations = []

    def writer(first_id: int):
        for n in range(5):
            message_id = first_id + n
            store.create_message(message(message_id))
            acknowledged.add(message_id)
            gevent.sleep(CALL_DELAY / 3)

    def reader():
        for _ in range(6):
            expected = set(acknowledged)
            page = {m.id for m in store.list_messages(CHANNEL, limit=100)}
            if not expected <= page:
                violations.append(expected - page)
            gevent.sleep(CALL_DELAY / 4)

    group = Group()
    for w in range(3):
        group.spawn(writer, (1 << 40) + w * 100)
    for _ in range(10):
        group.spawn(reader)
    group.join(raise_error=True)
    assert violations == []


def test_reaction_counts_without_reactions_are_shared_by_every_viewer(store, backend):
    store.layer(SqlMessageStore).create_message(message(1 << 40))
    group = Group()
    for viewer in (VIEWER, OTHER_VIEWER) * 5:
        group.spawn(store.reaction_counts, CHANNEL, [1 << 40], viewer)
    group.join(raise_error=True)
    assert backend.calls["reaction_counts"] == 1


def test_reaction_counts_keep_each_viewers_me(store, backend):
    store.layer(SqlMessageStore).create_message(message(1 << 40))
    store.layer(SqlMessageStore).add_reaction(CHANNEL, 1 << 40, "👍", VIEWER)
    group = Group()
    mine = [group.spawn(store.reaction_counts, CHANNEL, [1 << 40], VIEWER) for _ in range(5)]
    theirs = [group.spawn(store.reaction_counts, CHANNEL, [1 << 40], OTHER_VIEWER) for _ in range(5)]
    group.join(raise_error=True)
    assert {g.value[1 << 40][0].me for g in mine} == {True}
    assert {g.value[1 << 40][0].me for g in theirs} == {False}
    assert backend.calls["reaction_counts"] == 2


def test_other_methods_are_delegated(store, backend):
    store.create_message(message(1 << 40))
    assert store.get_message(CHANNEL, 1 << 40).content == f"#{1 << 40}"
    assert store.backend == "sql"
    assert isinstance(store, MessageStore)
