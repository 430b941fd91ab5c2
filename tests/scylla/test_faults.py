"""Injected faults give the documented behaviour: a retry or a speculative read on another replica succeeds, or
the caller gets a fast StoreUnavailable; nothing waits past the request timeout; acknowledged writes survive
a node going down. Three nodes, RF=3, LOCAL_QUORUM, a 1 s request timeout."""
from __future__ import annotations

import contextlib
import gc
import time

import gevent
import pytest

from app.ids import SnowflakeGenerator, bucket_of
from app.messages.base import Message, StoreUnavailable
from tests.scylla.stores import KEYSPACE, apply_migrations, fresh_store, settings_for
from tests.support.cqlnode import CqlTestCluster

REQUEST_TIMEOUT = 1.0
CHANNEL = 7


@pytest.fixture(scope="module")
def nodes():
    with CqlTestCluster(nodes=3, first_address=30) as cluster:
        apply_migrations(settings_for(cluster.contact_points, cluster.port))
        yield cluster


@pytest.fixture
def store(nodes):
    with fresh_store(settings_for(nodes.contact_points, nodes.port, scylla_request_timeout=REQUEST_TIMEOUT)) as fresh:
        yield fresh
    nodes.clear_faults()
    for node in nodes.nodes:
        node.start()


@pytest.fixture
def ids():
    return SnowflakeGenerator(9)


def write(store, ids, count: int) -> list[Message]:
    messages = [Message(id=ids.next_id(), channel_id=CHANNEL, author_id=1, content=str(n)) for n in range(count)]
    for message in messages:
        store.create_message(message)
    return messages


@contextlib.contextmanager
def no_full_collections():
    """No automatic garbage collection while timing: a full collection of the heap a whole suite leaves stops
    the process (the driver's timers and the nodes alike) for longer than the latency a timing bound allows."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def timed(call, *args, **kwargs):
    started = time.monotonic()
    result = call(*args, **kwargs)
    return result, time.monotonic() - started


@pytest.mark.parametrize("kind", ["read_timeout", "unavailable", "overloaded", "drop"])
def test_a_failing_replica_is_retried_on_another_for_reads(store, nodes, ids, kind):
    messages = write(store, ids, 3)
    nodes.node(0).inject(kind, applies_to="reads")
    for _ in range(10):
        found, elapsed = timed(store.get_message, CHANNEL, messages[0].id)
        assert found == messages[0] and elapsed < REQUEST_TIMEOUT
        assert [m.id for m in store.list_messages(CHANNEL)] == [m.id for m in reversed(messages)]


@pytest.mark.parametrize("kind", ["write_timeout", "unavailable", "overloaded", "drop"])
def test_a_failing_replica_is_retried_on_another_for_idempotent_writes(store, nodes, ids, kind):
    nodes.node(1).inject(kind, applies_to="writes")
    messages, elapsed = timed(write, store, ids, 10)
    assert elapsed < REQUEST_TIMEOUT
    assert [m.id for m in store.list_messages(CHANNEL)] == [m.id for m in reversed(messages)]


def test_a_slow_replica_is_overtaken_by_a_speculative_read(store, nodes, ids):
    (message,) = write(store, ids, 1)
    # The replica asked first: the partition (channel, 10-day bucket) and so its replicas change with the date.
    slow = nodes.partition_replicas(KEYSPACE, "messages", (CHANNEL, bucket_of(message.id)))[0]
    slow.inject("latency", delay=REQUEST_TIMEOUT * 0.8, applies_to="reads")
    slow.requests.clear()
    with no_full_collections():
        for _ in range(12):
            found, elapsed = timed(store.get_message, CHANNEL, message.id)
            assert found == message and elapsed < REQUEST_TIMEOUT * 0.5
    assert slow.requests, "the slow replica was never tried, so nothing was shown"


@pytest.mark.parametrize("kind", ["read_timeout", "unavailable", "overloaded"])
def test_when_every_replica_fails_the_caller_gets_store_unavailable_fast(store, nodes, ids, kind):
    (message,) = write(store, ids, 1)
    for node in nodes.nodes:
        node.inject(kind)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        store.get_message(CHANNEL, message.id)
    with pytest.raises(StoreUnavailable):
        store.create_message(Message(id=ids.next_id(), channel_id=CHANNEL, author_id=1))
    assert time.monotonic() - started < REQUEST_TIMEOUT


def test_a_cluster_that_never_answers_fails_at_the_request_timeout(store, nodes, ids):
    (message,) = write(store, ids, 1)
    for node in nodes.nodes:
        node.inject("stall")
    started = time.monotonic()
    for call in (lambda: store.get_message(CHANNEL, message.id), lambda: store.list_messages(CHANNEL),
                 lambda: store.create_message(Message(id=ids.next_id(), channel_id=CHANNEL, author_id=1))):
        with pytest.raises(StoreUnavailable):
            call()
    assert time.monotonic() - started < 3 * (REQUEST_TIMEOUT + 0.3)


def test_two_nodes_down_of_three_is_store_unavailable_for_quorum(store, nodes, ids):
    write(store, ids, 1)
    nodes.node(0).stop()
    nodes.node(1).stop()
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        store.create_message(Message(id=ids.next_id(), channel_id=CHANNEL, author_id=1))
    with pytest.raises(StoreUnavailable):
        store.list_messages(CHANNEL)
    assert time.monotonic() - started < 2 * REQUEST_TIMEOUT


def test_no_acknowledged_write_is_lost_when_a_node_goes_down(store, nodes, ids):
    acknowledged, failed = [], []

    def writer(worker: int) -> None:
        generator = SnowflakeGenerator(100 + worker)
        for n in range(25):
            message = Message(id=generator.next_id(), channel_id=CHANNEL, author_id=1, content=f"{worker}/{n}")
            try:
                store.create_message(message)
            except StoreUnavailable:
                failed.append(message)
            else:
                acknowledged.append(message)
            gevent.sleep(0.005)

    writers = [gevent.spawn(writer, worker) for worker in range(8)]
    gevent.sleep(0.05)
    nodes.node(1).stop()
    gevent.joinall(writers, raise_error=True, timeout=30)
    assert len(acknowledged) + len(failed) == 200 and len(acknowledged) > 150
    stored = {m.id: m for m in store.list_messages(CHANNEL, limit=1000)}
    assert all(stored.get(m.id) == m for m in acknowledged)
    # Back up, the node that missed writes serves a quorum with one that had them.
    nodes.node(1).start()
    host = next(h for h in store.session.cluster.metadata.all_hosts() if h.address == nodes.node(1).address)
    deadline = time.monotonic() + 10
    while not host.is_up and time.monotonic() < deadline:
        gevent.sleep(0.05)
    nodes.node(0).stop()
    stored = {m.id: m for m in store.list_messages(CHANNEL, limit=1000)}
    assert all(stored.get(m.id) == m for m in acknowledged)


def test_nodes_that_forgot_the_prepared_statements_get_them_again(store, nodes, ids):
    """A node answers UNPREPARED after a restart or a cache eviction; the driver re-prepares and retries."""
    messages = write(store, ids, 3)
    for node in nodes.nodes:
        node.prepared.clear()
    assert store.get_messages(CHANNEL, [m.id for m in messages]) == {m.id: m for m in messages}
    write(store, ids, 2)
    assert any(node.prepared for node in nodes.nodes)
