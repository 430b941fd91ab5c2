"""The outbox and its relay, on SQLite and PostgreSQL: only committed events, in commit order, at least once,
through a bus outage and a change of relay."""
from __future__ import annotations

import time

import gevent
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from app.events import relay as relay_module
from app.events.outbox import append
from app.events.redis import RedisEventBus
from app.events.relay import EventRelay, start_relay, stop_relay, wake
from app.events.sql import SqlEventBus
from app.extensions import Resources, create_db_engine
from models.events import event_outbox
from tests.events.builders import event, guilds_per_partition, ids
from tests.events.conftest import PARTITIONS, empty_event_tables
from tests.support.databases import migrated_database
from tests.support.redis import REDIS_URL, delete_prefixed, require_redis, throwaway_redis, unique_prefix
from tests.support.server import free_port


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database(request, tmp_path_factory):
    with migrated_database(request.param, tmp_path_factory.mktemp(f"relay-{request.param}")) as settings:
        yield settings.replace(event_partitions=PARTITIONS)


@pytest.fixture
def engine(database):
    engine = create_db_engine(database)
    yield engine
    empty_event_tables(engine)
    engine.dispose()


@pytest.fixture
def bus(engine):
    bus = SqlEventBus(engine, PARTITIONS, max_age_seconds=86400)
    yield bus
    bus.close()


@pytest.fixture
def relays():
    """Relays a test starts; stopped afterwards."""
    started: list[EventRelay] = []
    yield started
    for relay in started:
        relay.stop()


def commit(engine, events) -> None:
    with engine.begin() as connection:
        append(connection, events)


def outbox_depth(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(event_outbox)).scalar_one()


def everything(bus) -> list:
    return [e for partition in range(PARTITIONS) for e in bus.read(partition, None, limit=10_000)]


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def wait_until(condition, timeout: float = 5.0, message: str = "condition not reached"):
    deadline = time.monotonic() + timeout
    while not (outcome := condition()):
        assert time.monotonic() < deadline, message
        gevent.sleep(0.01)
    return outcome


def relay_all(relay: EventRelay) -> None:
    assert relay.leadership.acquire()
    while relay.relay_once():
        pass


def test_events_of_a_rolled_back_transaction_never_appear(engine, bus):
    guild = guilds_per_partition(PARTITIONS)[0]
    rolled_back, committed = event(guild), event(guild)
    with engine.connect() as connection:
        transaction = connection.begin()
        append(connection, [rolled_back])
        transaction.rollback()
    commit(engine, [committed])
    relay = EventRelay(engine, bus)
    relay_all(relay)
    relay.leadership.release()
    assert ids(everything(bus)) == [committed.id]
    assert outbox_depth(engine) == 0


def test_committed_events_reach_the_bus_in_commit_order(engine, bus):
    guild = guilds_per_partition(PARTITIONS)[1]
    transactions = [[event(guild, seq=f"{n}.{k}") for k in range(n % 3 + 1)] for n in range(6)]
    for events in transactions:
        commit(engine, events)
    relay = EventRelay(engine, bus, batch_size=4)
    relay_all(relay)
    relay.leadership.release()
    assert ids(bus.read(1, None, limit=100)) == [e.id for events in transactions for e in events]
    assert outbox_depth(engine) == 0


def one_leading_pass(engine, bus) -> tuple[int, list[tuple[str, bool]]]:
    """One pass of a relay that leads: what it relayed, and each statement it sent with whether psycopg2 had a
    transaction around it (was not in autocommit; sqlite3's connections of Python 3.11 have no such flag)."""
    relay = EventRelay(engine, bus)
    assert relay.leadership.acquire()
    sent: list[tuple[str, bool]] = []

    def record(connection, _cursor, statement, *_args):
        sent.append((statement, not getattr(connection.connection.driver_connection, "autocommit", False)))

    sa_event.listen(engine, "before_cursor_execute", record)
    try:
        return relay.relay_once(), sent
    finally:
        sa_event.remove(engine, "before_cursor_execute", record)
        relay.leadership.release()


def test_an_idle_pass_reads_the_outbox_once_and_nothing_else(engine, bus):
    relayed, sent = one_leading_pass(engine, bus)
    assert relayed == 0
    queries = [statement for statement, _ in sent if statement.strip().upper() != "BEGIN"]
    assert len(queries) == 1 and "event_outbox" in queries[0]


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_a_pass_reads_and_deletes_without_a_transaction_on_postgres(engine, bus):
    """psycopg2 would send a BEGIN and a COMMIT around each, two more round trips on every event's way."""
    commit(engine, [event(guilds_per_partition(PARTITIONS)[0])])
    relayed, sent = one_leading_pass(engine, bus)
    assert relayed == 1
    verbs = [(statement.split(maxsplit=1)[0], inside) for statement, inside in sent]
    assert [(verb, inside) for verb, inside in verbs if verb in ("SELECT", "DELETE")] == [
        ("SELECT", False), ("DELETE", False)]


def test_a_running_relay_delivers_a_commit_at_once_when_woken(engine, bus, relays):
    guild = guilds_per_partition(PARTITIONS)[2]
    relay = EventRelay(engine, bus)
    relays.append(relay)
    relay.start()
    wait_until(relay.leadership.confirm, message="the only relay never led")
    written = event(guild)
    started = time.monotonic()
    commit(engine, [written])
    relay.wake()
    wait_until(lambda: bus.read(2, None, limit=10), message="the event never reached the bus")
    # Within 0.8 s even on a loaded machine: the wake-up (or the 20 ms poll) did it.
    assert time.monotonic() - started < 0.8


def test_a_commit_wakes_the_relay_without_being_told(engine, bus, relays):
    guild = guilds_per_partition(PARTITIONS)[3]
    relay = EventRelay(engine, bus)
    relays.append(relay)
    relay.start()
    wait_until(relay.leadership.confirm, message="the only relay never led")
    started = time.monotonic()
    commit(engine, [event(guild)])
    wait_until(lambda: bus.read(3, None, limit=10), message="the event never reached the bus")
    # The 20 ms poll found it, on either database.
    assert time.monotonic() - started < 0.8


def test_a_relay_keeps_the_events_while_the_bus_is_down_and_delivers_all_when_it_is_back(
        engine, relays, tmp_path):
    guilds = guilds_per_partition(PARTITIONS)
    with throwaway_redis(free_port(), tmp_path) as server:
        bus = RedisEventBus.from_url(server.url, PARTITIONS, prefix="outage", max_age_seconds=86400)
        relay = EventRelay(engine, bus)
        relays.append(relay)
        relay.start()
        wait_until(relay.leadership.confirm, message="the only relay never led")
        before = event(guilds[0])
        commit(engine, [before])
        wait_until(lambda: outbox_depth(engine) == 0, message="the first event was never relayed")

        server.stop()
        failures = metric("chatstore_event_publish_failures_total")
        written = [event(guilds[n % PARTITIONS], seq=n) for n in range(12)]
        for n in range(0, len(written), 3):
            commit(engine, written[n:n + 3])  # writes succeed while the bus is down
            relay.wake()
        wait_until(lambda: metric("chatstore_event_publish_failures_total") > failures, message="no publish failed")
        assert outbox_depth(engine) == len(written)

        server.start()
        wait_until(lambda: outbox_depth(engine) == 0, timeout=10, message="the outbox was never drained")
        delivered = everything(bus)
        # A throwaway server without persistence lost the event published before its restart.
        assert before.id not in ids(delivered)
        assert sorted(ids(delivered)) == sorted(ids(written))
        for partition in range(PARTITIONS):
            assert [e.id for e in delivered if e.partition == partition] == [
                e.id for e in written if bus.partition_for(e) == partition]
        bus.close()


@pytest.fixture
def redis_bus():
    """A bus on the shared Redis: its calls are socket I/O, so racing relays' passes interleave."""
    require_redis()
    prefix = unique_prefix()
    bus = RedisEventBus.from_url(REDIS_URL, PARTITIONS, prefix=prefix, max_age_seconds=86400)
    yield bus
    bus.close()
    delete_prefixed(REDIS_URL, prefix)


def test_two_racing_relays_deliver_each_channels_events_once_in_order(engine, redis_bus, relays, monkeypatch):
    monkeypatch.setattr(relay_module, "FOLLOWER_RETRY_SECONDS", 0.02)
    guild = guilds_per_partition(PARTITIONS)[0]
    first, second = EventRelay(engine, redis_bus, batch_size=3), EventRelay(engine, redis_bus, batch_size=3)
    relays.extend([first, second])
    first.start()
    second.start()
    channels = [guild + 1, guild + 2, guild + 3]
    written: dict[int, list[int]] = {channel: [] for channel in channels}

    def writer(channel: int) -> None:
        for seq in range(30):
            written_event = event(guild, channel_id=channel, seq=seq)
            commit(engine, [written_event])
            written[channel].append(written_event.id)
            first.wake()
            second.wake()
            if seq == 15 and channel == channels[0]:
                # The leader goes away mid-stream; the other takes over.
                (first if first.leadership.confirm() else second).stop()

    gevent.joinall([gevent.spawn(writer, channel) for channel in channels], raise_error=True)
    wait_until(lambda: outbox_depth(engine) == 0, timeout=10, message="the outbox was never drained")
    delivered = redis_bus.read(0, None, limit=10_000)
    # One relay at a time and no crash: each event exactly once, each channel's in commit order.
    assert len(ids(delivered)) == len(set(ids(delivered)))
    for channel in channels:
        assert [e.id for e in delivered if e.channel_id == channel] == written[channel]


def test_start_relay_runs_one_relay_per_process_in_worker_mode_only(database):
    for mode in ("process", "off"):
        resources = Resources(database.replace(event_relay=mode))
        assert start_relay(resources) is None
        resources.close()
    resources = Resources(database.replace(event_relay="worker"))
    try:
        relay = start_relay(resources)
        assert relay is not None and start_relay(resources) is relay
        wait_until(relay.leadership.confirm, message="the worker's relay never led")
        guild = guilds_per_partition(PARTITIONS)[1]
        written = event(guild)
        commit(resources.engine, [written])
        wake()
        wait_until(lambda: resources.event_bus.read(1, None, limit=10), message="the event never arrived")
        assert ids(resources.event_bus.read(1, None, limit=10)) == [written.id]
    finally:
        stop_relay()
        empty_event_tables(resources.engine)
        resources.close()


def test_the_relay_reports_outbox_depth_relay_lag_and_group_lag(engine, bus):
    guild = guilds_per_partition(PARTITIONS)[0]
    bus.ensure_group("indexer")
    commit(engine, [event(guild), event(guild)])
    relay = EventRelay(engine, bus)
    relay.measure()
    assert metric("chatstore_event_outbox_depth") == 2
    assert metric("chatstore_event_relay_lag_seconds") > 0
    relay_all(relay)
    relay.measure()
    assert metric("chatstore_event_outbox_depth") == 0
    assert metric("chatstore_event_relay_lag_seconds") == 0
    assert metric("chatstore_event_group_lag", group="indexer") == 2
    relay.leadership.release()
