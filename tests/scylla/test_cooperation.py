"""The driver runs cooperatively under gevent: requests overlap instead of queueing behind each other, and the
hub keeps running while they wait. The node runs in another process, so a blocked hub could not hide behind it."""
from __future__ import annotations

import time

import gevent
import pytest

from app.ids import SnowflakeGenerator
from app.messages.base import Message
from tests.scylla.stores import apply_migrations, fresh_store, settings_for
from tests.support.cqlnode.control import RemoteCluster

ROUND_TRIP = 0.05
READERS = 60


@pytest.fixture(scope="module")
def remote_nodes():
    with RemoteCluster(nodes=3, first_address=50) as nodes:
        apply_migrations(settings_for(nodes.contact_points, nodes.port))
        yield nodes


def test_concurrent_reads_take_one_round_trip_not_their_sum(remote_nodes):
    with fresh_store(settings_for(remote_nodes.contact_points, remote_nodes.port)) as store:
        ids = SnowflakeGenerator(11)
        messages = [Message(id=ids.next_id(), channel_id=3, author_id=1, content=str(n)) for n in range(READERS)]
        for message in messages:
            store.create_message(message)
        read_all(store, messages)  # connections to every node are open and warm
        without_latency, _ = read_all(store, messages)
        for index in range(3):
            remote_nodes.node(index).inject("latency", delay=ROUND_TRIP)
        try:
            with_latency, ticks = read_all(store, messages)
        finally:
            remote_nodes.clear_faults()
    # One added round trip plus the work done without latency, where reads waiting in turn would add READERS
    # round trips (3 s). The margins absorb a busy machine (the suite shares two cores), not a blocked hub.
    assert ROUND_TRIP <= with_latency < without_latency + 4 * ROUND_TRIP, (
        f"{READERS} reads took {with_latency:.3f}s with {ROUND_TRIP}s latency, {without_latency:.3f}s without")
    longest_pause = max(b - a for a, b in zip(ticks, ticks[1:]))
    assert longest_pause < 4 * ROUND_TRIP, f"a bystander greenlet waited {longest_pause:.3f}s: the hub was blocked"


def read_all(store, messages) -> tuple[float, list[float]]:
    """Read every message concurrently; the time it took, and when a bystander greenlet got to run."""
    ticks = []
    ticker = gevent.spawn(_tick, ticks)
    started = time.monotonic()
    readers = [gevent.spawn(store.get_message, m.channel_id, m.id) for m in messages]
    gevent.joinall(readers, raise_error=True, timeout=10)
    elapsed = time.monotonic() - started
    ticker.kill()
    assert [r.value for r in readers] == messages
    return elapsed, ticks


def _tick(ticks: list) -> None:
    while True:
        ticks.append(time.monotonic())
        gevent.sleep(0.005)
