"""What a consumer group of the SQL bus costs in statements, on SQLite and PostgreSQL: under load each one is a
round trip that waits its turn on a busy worker's hub, so a consumer's lag grows with their number."""
from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import event as sa_event

from app.events.sql import SqlEventBus
from app.extensions import create_db_engine
from tests.events.builders import event, guilds_per_partition
from tests.events.conftest import PARTITIONS, empty_event_tables
from tests.support.databases import migrated_database

GROUP = "indexer"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database(request, tmp_path_factory):
    with migrated_database(request.param, tmp_path_factory.mktemp(f"sql-bus-{request.param}")) as settings:
        yield settings


@pytest.fixture
def bus(database):
    engine = create_db_engine(database)
    bus = SqlEventBus(engine, PARTITIONS, max_age_seconds=86400)
    bus.ensure_group(GROUP)
    yield bus
    bus.close()
    empty_event_tables(engine)
    engine.dispose()


@contextmanager
def statements_of(engine):
    """The statements sent (BEGIN and COMMIT left out), each with whether it went as an executemany."""
    sent: list[tuple[str, bool]] = []

    def record(_conn, _cursor, statement, _parameters, _context, executemany):
        if statement.split(maxsplit=1)[0].upper() not in ("BEGIN", "COMMIT"):
            sent.append((statement, executemany))

    sa_event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sa_event.remove(engine, "before_cursor_execute", record)


@contextmanager
def transactions_of(engine):
    """For each statement sent, whether the driver wraps it in a transaction of its own making (psycopg2 outside
    autocommit: a BEGIN and a COMMIT, each a round trip)."""
    wrapped: list[bool] = []

    def record(connection, *_args):
        wrapped.append(not connection.connection.driver_connection.autocommit)

    sa_event.listen(engine, "before_cursor_execute", record)
    try:
        yield wrapped
    finally:
        sa_event.remove(engine, "before_cursor_execute", record)


def test_publishing_is_two_statements_per_partition(bus):
    first, second = guilds_per_partition(PARTITIONS)[:2]
    bus.publish([event(first), event(second), event(first)])
    with statements_of(bus.engine) as sent:
        bus.publish([event(first), event(second), event(first)])
    # Per partition, its positions taken (the row locked) and its events inserted; then the wake-up on PostgreSQL.
    assert len([statement for statement, _ in sent if not statement.startswith("NOTIFY")]) == 4, sent
    assert [e.position for e in bus.read(bus.partition_for(event(first)), None, 10)] == ["1", "2", "3", "4"]


def test_a_group_read_reads_only_the_partitions_with_events(bus):
    busy = guilds_per_partition(PARTITIONS)[1]
    bus.publish([event(busy) for _ in range(30)])
    with statements_of(bus.engine) as sent:
        assert len(bus.read_group(GROUP, "consumer", 100)) == 30
    # The look for partitions with events; then their offsets locked, the one partition's events read, the
    # pending rows inserted and its offset moved. Not a read of each of the other partitions.
    assert len(sent) == 5, sent


def test_acknowledging_a_batch_is_one_statement_per_partition(bus):
    first, second = guilds_per_partition(PARTITIONS)[:2]
    bus.publish([event(first) for _ in range(30)] + [event(second) for _ in range(20)])
    events = bus.read_group(GROUP, "consumer", 100)
    with statements_of(bus.engine) as sent:
        bus.ack(GROUP, events)
    assert len(sent) == 2 and not any(executemany for _, executemany in sent), sent
    assert bus.claim_stale(GROUP, "another", 0, 100) == []


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_lone_statements_go_without_a_transaction_on_postgres(bus):
    first, second = guilds_per_partition(PARTITIONS)[:2]
    bus.publish([event(first), event(second)])
    with transactions_of(bus.engine) as wrapped:
        events = bus.read_group(GROUP, "consumer", 100)
    # The look for partitions with events stands alone; the delivery is one transaction.
    assert wrapped[0] is False and all(wrapped[1:]), wrapped
    with transactions_of(bus.engine) as wrapped:
        bus.ack(GROUP, events)
    assert wrapped == [False, False]
