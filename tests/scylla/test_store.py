"""Behaviour of ScyllaMessageStore beyond the shared contract: what it writes, the edit/delete race, bucket
walks, error mapping and the cooperative driver. Runs on the shared in-process test nodes."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import gevent
import pytest
from cassandra.io.asyncioreactor import AsyncioConnection

from app.ids import BUCKET_SIZE_MS, SnowflakeGenerator, bucket_of
from app.messages.base import Message, StoreUnavailable
from app.messages.gevent_connection import CooperativeConnection, assert_cooperative
from app.messages.scylla import ScyllaMessageStore
from tests.scylla.stores import KEYSPACE, shared_test_nodes

CHANNEL = 42
BUCKET_SHIFT = BUCKET_SIZE_MS << 22


@pytest.fixture
def ids():
    return SnowflakeGenerator(7)


def raw_rows(table: str) -> dict:
    """Every stored row of ``table`` (live or not) by (partition key, clustering key), straight from the dataset."""
    partitions = shared_test_nodes().dataset.data[(KEYSPACE, table)]
    return {(key, clustering): row
            for key, partition in partitions.items() for clustering, row in partition.rows.items()}


def eventually(predicate, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        gevent.sleep(0.01)
    return True


def test_create_writes_only_the_columns_that_differ_from_defaults(store, ids):
    message = Message(id=ids.next_id(), channel_id=CHANNEL, author_id=5, content="hi", mentions=(9,))
    store.create_message(message)
    (row,) = raw_rows("messages").values()
    assert set(row.cells) == {"author_id", "content", "mentions"}
    assert store.get_message(CHANNEL, message.id) == message


def test_messages_are_partitioned_by_channel_and_bucket_newest_first(store, ids):
    newest = ids.next_id()
    older = newest - 2 * BUCKET_SHIFT
    for message_id in (older, newest, newest - 1):
        store.create_message(Message(id=message_id, channel_id=CHANNEL, author_id=5))
    assert store.channel_buckets(CHANNEL) == [bucket_of(newest), bucket_of(older)]
    keys = list(raw_rows("messages"))
    assert {key for key, _ in keys} == {(CHANNEL, bucket_of(newest)), (CHANNEL, bucket_of(older))}
    assert [m.id for m in store.list_messages(CHANNEL)] == [newest, newest - 1, older]


class _DeleteDuringEdit(ScyllaMessageStore):
    """Deletes the message right after update_message has checked that it exists: the race, every time."""

    armed = False

    def get_message(self, channel_id, message_id):
        found = super().get_message(channel_id, message_id)
        if self.armed:
            self.armed = False
            self.delete_messages(channel_id, [message_id])
        return found


def test_an_edit_losing_to_a_delete_returns_none_and_leaves_nothing(store, ids):
    racing = _DeleteDuringEdit(store.settings)
    try:
        message = Message(id=ids.next_id(), channel_id=CHANNEL, author_id=5, content="before")
        racing.create_message(message)
        racing.armed = True
        assert racing.update_message(CHANNEL, message.id, {"content": "after"}) is None
        assert racing.get_message(CHANNEL, message.id) is None
        assert eventually(lambda: not raw_rows("messages")), "the edit's remnant row was not removed"
    finally:
        racing.close()


def test_remnant_rows_are_never_read_as_messages_and_do_not_shorten_pages(store, ids):
    messages = [Message(id=ids.next_id(), channel_id=CHANNEL, author_id=5, content=str(i)) for i in range(5)]
    for message in messages:
        store.create_message(message)
    store.delete_messages(CHANNEL, [messages[3].id])
    # What an edit arriving after the delete leaves: the key and the edited column.
    store.session.execute(f"UPDATE {KEYSPACE}.messages SET content = 'ghost' WHERE channel_id = %s AND bucket = %s "
                          "AND message_id = %s", (CHANNEL, messages[3].bucket, messages[3].id))
    assert len(raw_rows("messages")) == 5
    assert [m.id for m in store.list_messages(CHANNEL, limit=3)] == [messages[4].id, messages[2].id, messages[1].id]
    assert eventually(lambda: len(raw_rows("messages")) == 4)


def test_concurrent_edits_and_deletes_never_leave_a_readable_partial_message(store, ids):
    messages = [Message(id=ids.next_id(), channel_id=CHANNEL, author_id=5, content="original") for _ in range(30)]
    for message in messages:
        store.create_message(message)
    edits = [gevent.spawn(store.update_message, CHANNEL, m.id, {"content": f"edit {n}"})
             for n in range(3) for m in messages]
    deletes = [gevent.spawn(store.delete_messages, CHANNEL, [m.id]) for m in messages[::2]]
    gevent.joinall(edits + deletes, raise_error=True, timeout=20)
    for edited in (greenlet.value for greenlet in edits):
        assert edited is None or (edited.author_id == 5 and edited.content.startswith("edit"))
    survivors = {m.id for m in messages[1::2]}
    listed = store.list_messages(CHANNEL, limit=100)
    assert {m.id for m in listed} == survivors
    assert all(m.author_id == 5 and m.content.startswith("edit") for m in listed)
    assert eventually(lambda: all(row.cells.get("author_id") is not None for row in raw_rows("messages").values()))


def test_a_busy_channel_page_reads_one_bucket(store, ids):
    for _ in range(10):
        store.create_message(Message(id=ids.next_id(), channel_id=CHANNEL, author_id=5))
    store.create_message(Message(id=ids.next_id() - 3 * BUCKET_SHIFT, channel_id=CHANNEL, author_id=5))
    nodes = shared_test_nodes()
    for node in nodes.nodes:
        node.requests.clear()
    assert len(store.list_messages(CHANNEL, limit=5)) == 5
    reads = [r for node in nodes.nodes for r in node.requests if r[:2] == ("Select", "messages")]
    assert len(reads) == 1


def test_a_sparse_channel_reads_its_buckets_concurrently(store, ids):
    newest = ids.next_id()
    expected = [newest - n * BUCKET_SHIFT for n in range(7)]
    for message_id in expected:
        store.create_message(Message(id=message_id, channel_id=CHANNEL, author_id=5))
    nodes = shared_test_nodes()
    round_trip = 0.15
    for node in nodes.nodes:
        node.inject("latency", delay=round_trip)
    started = time.monotonic()
    assert [m.id for m in store.list_messages(CHANNEL, limit=50)] == expected
    elapsed = time.monotonic() - started
    # The bucket index, the newest bucket, then two rounds of three: 4 round trips, not 8 one after another.
    assert 4 * round_trip <= elapsed < 6 * round_trip


def test_operational_driver_errors_become_store_unavailable_quickly(store, ids):
    nodes = shared_test_nodes()
    for node in nodes.nodes:
        node.inject("unavailable")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        store.create_message(Message(id=ids.next_id(), channel_id=CHANNEL, author_id=5))
    with pytest.raises(StoreUnavailable):
        store.list_messages(CHANNEL)
    assert time.monotonic() - started < 1.0


def test_the_store_refuses_a_connection_class_that_would_block_the_hub():
    assert_cooperative(CooperativeConnection)
    with pytest.raises(RuntimeError, match="CooperativeConnection"):
        assert_cooperative(AsyncioConnection)


def test_the_driver_session_is_created_on_first_use_and_closed(store):
    fresh = ScyllaMessageStore(store.settings)
    assert fresh._cluster is None
    fresh.ping()
    assert fresh._cluster.connection_class is CooperativeConnection
    fresh.close()
    assert fresh._cluster is None


def test_times_keep_their_microseconds(store, ids):
    edited_at = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)
    message = Message(id=ids.next_id(), channel_id=CHANNEL, author_id=5)
    store.create_message(message)
    assert store.update_message(CHANNEL, message.id, {"edited_at": edited_at}).edited_at == edited_at
    store.pin_message(CHANNEL, message.id, edited_at)
    assert store.list_pins(CHANNEL, before=None, limit=1)[0].pinned_at == edited_at


def test_rows_of_one_shape_share_one_row_class(store, ids):
    """Building a named tuple class costs more than decoding a small result, so each shape gets one."""
    first, second = (Message(id=ids.next_id(), channel_id=CHANNEL, author_id=1, content=str(n)) for n in range(2))
    store.create_message(first)
    store.create_message(second)
    assert type(store.session.execute(f"SELECT * FROM {KEYSPACE}.messages LIMIT 1").one()) is \
        type(store.session.execute(f"SELECT * FROM {KEYSPACE}.messages LIMIT 1").one())
