"""The SQL event bus (EVENT_BUS=sql, the embedded default): the log in the metadata database.

Positions are dense integers per partition, assigned at publish under the partition's row lock, so positions
commit in order and a reader that has seen position n never later finds a smaller one committing: it cannot
skip a late row. A blocking read is woken by ``NOTIFY`` on PostgreSQL (with a slow poll as a safety net in case
the listener was reconnecting) and polls every ``poll_seconds`` on SQLite; publishes in this process wake it
at once on both.

Consumer groups: ``event_group_offsets`` holds, per group and partition, the last position delivered; delivering
inserts ``event_group_pending`` rows that ``ack`` deletes and ``claim_stale`` hands to another consumer.
"""
from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import gevent
import gevent.event
from sqlalchemy import Connection, Engine, and_, delete, func, select, text, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite

from app.events.base import Event, EventBus, EventBusUnavailable, PositionExpired, event_from_bytes, event_to_bytes
from app.events.postgres import dedicated_connection, wait_for_notification
from models.base import DATABASE_UNAVAILABLE, READ_ONLY, single_statements
from models.events import event_group_offsets, event_group_pending, event_partitions, event_stream

log = logging.getLogger(__name__)

#: The PostgreSQL channel on which a publish wakes blocked readers at commit.
STREAM_CHANNEL = "chatstore_event_stream"
#: How often a blocked read looks again on SQLite, where only this process's publishes can wake it.
SQLITE_POLL_SECONDS = 0.02
#: How often a blocked read looks again on PostgreSQL even without a notification (the listener may be
#: reconnecting).
POSTGRES_POLL_SECONDS = 1.0

_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def _position(text_position: str | None) -> int:
    if text_position is None:
        return 0
    if not (isinstance(text_position, str) and text_position.isdigit()):
        raise ValueError(f"not a position of the sql event bus: {text_position!r}")
    return int(text_position)


class SqlEventBus(EventBus):
    backend = "sql"

    def __init__(self, engine: Engine, partitions: int, *, max_age_seconds: int | None = None,
                 max_events: int | None = None):
        super().__init__(partitions)
        self.engine = engine
        self.max_age_seconds = max_age_seconds
        self.max_events = max_events
        self._read_engine = engine.execution_options(**READ_ONLY)
        self._insert = _INSERTS[engine.dialect.name]
        self._is_postgres = engine.dialect.name == "postgresql"
        self._poll_seconds = POSTGRES_POLL_SECONDS if self._is_postgres else SQLITE_POLL_SECONDS
        self._published = gevent.event.Event()
        self._listener: gevent.Greenlet | None = None

    # -- plumbing --------------------------------------------------------------------------------------------

    @contextmanager
    def _transaction(self, *, read_only: bool = False, single: bool = False) -> Iterator[Connection]:
        """A transaction, or with ``single`` a connection whose statements each stand alone
        (models.base.single_statements)."""
        opened = (single_statements(self._read_engine if read_only else self.engine) if single
                  else (self._read_engine if read_only else self.engine).begin())
        try:
            with opened as connection:
                yield connection
        except DATABASE_UNAVAILABLE as error:
            raise EventBusUnavailable(f"sql event bus unavailable: {type(error.orig or error).__name__}") from error
        except sa_exc.DBAPIError as error:
            if not error.connection_invalidated:
                raise
            raise EventBusUnavailable("sql event bus connection lost") from error

    def _ring(self) -> None:
        """Wake every read waiting in this process; a new Event for the next waiters, so none misses a ring."""
        rung, self._published = self._published, gevent.event.Event()
        rung.set()

    def _wait(self, doorbell: gevent.event.Event, seconds: float) -> None:
        if self._is_postgres and self._listener is None:
            self._listener = gevent.spawn(self._listen)
        doorbell.wait(min(seconds, self._poll_seconds))

    def _listen(self) -> None:
        """Ring the doorbell on every NOTIFY from a publisher in any process; reconnect when the connection drops."""
        while True:
            try:
                connection = dedicated_connection(self.engine, STREAM_CHANNEL)
            except Exception as error:  # the database is down: readers keep polling; try again soon
                log.warning("event stream listener cannot connect: %s", error)
                gevent.sleep(POSTGRES_POLL_SECONDS)
                continue
            try:
                while True:
                    if wait_for_notification(connection, POSTGRES_POLL_SECONDS):
                        self._ring()
            except Exception as error:  # a lost connection: readers poll meanwhile; listen again
                log.warning("event stream listener lost its connection: %s", error)
            finally:
                connection.close()

    def _blocking(self, attempt, block_seconds: float):
        """Run ``attempt()`` until it returns something or ``block_seconds`` have passed."""
        deadline = time.monotonic() + block_seconds
        while True:
            doorbell = self._published
            found = attempt()
            remaining = deadline - time.monotonic()
            if found or remaining <= 0:
                return found
            self._wait(doorbell, remaining)

    # -- publishing and reading ------------------------------------------------------------------------------

    def publish(self, events: Sequence[Event]) -> None:
        if not events:
            return
        by_partition: dict[int, list[Event]] = {}
        for event in events:
            by_partition.setdefault(self.partition_for(event), []).append(event)
        now = datetime.now(timezone.utc)
        with self._transaction() as connection:
            for partition in sorted(by_partition):  # one lock order for every publisher: no deadlock
                batch = by_partition[partition]
                last = self._reserve(connection, partition, len(batch))
                connection.execute(event_stream.insert(), [
                    {"partition": partition, "position": last + offset, "event_id": event.id,
                     "payload": event_to_bytes(event), "published_at": now}
                    for offset, event in enumerate(batch, start=1)])
            if self._is_postgres:
                connection.execute(text(f"NOTIFY {STREAM_CHANNEL}"))
        self._ring()

    def _reserve(self, connection: Connection, partition: int, count: int) -> int:
        """Take the ``count`` positions after the partition's last one and return that last one; the partition's
        row stays locked until commit (SQLite: the whole database already is). One statement: the relay's
        publish is on the way from every write to every consumer, and each statement is a round trip."""
        statement = self._insert(event_partitions).values(partition=partition, last_position=count, trimmed_through=0)
        statement = statement.on_conflict_do_update(
            index_elements=[event_partitions.c.partition],
            set_={"last_position": event_partitions.c.last_position + count},
        ).returning(event_partitions.c.last_position)
        return connection.execute(statement).scalar_one() - count

    def read(self, partition: int, after: str | None, limit: int, block_seconds: float = 0) -> list[Event]:
        start = _position(after)

        def attempt() -> list[Event]:
            with self._transaction(read_only=True) as connection:
                rows = connection.execute(
                    select(event_stream.c.position, event_stream.c.payload)
                    .where(event_stream.c.partition == partition, event_stream.c.position > start)
                    .order_by(event_stream.c.position).limit(limit)).all()
                # Read after the rows: a trim committed in between is then seen here, and raises.
                if after is not None and start < self._trimmed_through(connection, partition):
                    raise PositionExpired(partition, after, self._oldest(connection, partition))
            return [event_from_bytes(payload, partition=partition, position=str(position))
                    for position, payload in rows]

        return self._blocking(attempt, block_seconds)

    @staticmethod
    def _trimmed_through(connection: Connection, partition: int) -> int:
        trimmed = connection.execute(select(event_partitions.c.trimmed_through)
                                     .where(event_partitions.c.partition == partition)).scalar()
        return trimmed or 0

    @staticmethod
    def _oldest(connection: Connection, partition: int) -> str | None:
        oldest = connection.execute(select(func.min(event_stream.c.position))
                                    .where(event_stream.c.partition == partition)).scalar()
        return None if oldest is None else str(oldest)

    def position_order(self, position: str) -> tuple[int, ...]:
        return (_position(position),)

    def oldest_position(self, partition: int) -> str | None:
        with self._transaction(read_only=True) as connection:
            return self._oldest(connection, partition)

    def latest_position(self, partition: int) -> str | None:
        with self._transaction(read_only=True) as connection:
            latest = connection.execute(select(event_partitions.c.last_position)
                                        .where(event_partitions.c.partition == partition)).scalar()
        return str(latest) if latest else None

    def latest_positions(self) -> dict[int, str | None]:
        with self._transaction(read_only=True) as connection:
            rows = dict(connection.execute(
                select(event_partitions.c.partition, event_partitions.c.last_position)).all())
        return {p: (str(rows[p]) if rows.get(p) else None) for p in range(self.partitions)}

    # -- consumer groups -------------------------------------------------------------------------------------

    def ensure_group(self, group: str) -> None:
        with self._transaction() as connection:
            trimmed = dict(connection.execute(select(event_partitions.c.partition,
                                                     event_partitions.c.trimmed_through)).all())
            connection.execute(self._insert(event_group_offsets).on_conflict_do_nothing(), [
                {"group_name": group, "partition": partition, "delivered_through": trimmed.get(partition, 0)}
                for partition in range(self.partitions)])

    def read_group(self, group: str, consumer: str, count: int, block_seconds: float = 0) -> list[Event]:
        def attempt() -> list[Event]:
            # Looking costs a read; delivering, a write transaction (on SQLite, the database's write lock), so
            # an idle consumer polling on SQLite only ever reads.
            partitions = self._undelivered_partitions(group)
            return self._deliver(group, consumer, count, partitions) if partitions else []

        return self._blocking(attempt, block_seconds)

    def _undelivered_partitions(self, group: str) -> list[int]:
        """The partitions with events the group was not yet given (one probe of the stream's index each)."""
        offsets = event_group_offsets.c
        with self._transaction(read_only=True, single=True) as connection:
            rows = connection.execute(
                select(offsets.partition, select(event_stream.c.position).where(
                    event_stream.c.partition == offsets.partition,
                    event_stream.c.position > offsets.delivered_through).limit(1).exists())
                .where(offsets.group_name == group).order_by(offsets.partition)).all()
        if not rows:
            raise ValueError(f"no consumer group {group!r}: call ensure_group first")
        return [partition for partition, undelivered in rows if undelivered]

    def _deliver(self, group: str, consumer: str, count: int, partitions: list[int]) -> list[Event]:
        """Deliver from ``partitions`` (those found with events), locking only their offsets: the transaction
        that holds them, which the group's other consumers wait for, reads no partition with nothing to give."""
        with self._transaction() as connection:
            query = (select(event_group_offsets.c.partition, event_group_offsets.c.delivered_through)
                     .where(event_group_offsets.c.group_name == group,
                            event_group_offsets.c.partition.in_(partitions))
                     .order_by(event_group_offsets.c.partition))
            # Consumers of one group take turns here, so no two are handed the same event.
            offsets = connection.execute(query.with_for_update() if self._is_postgres else query).all()
            if not offsets:
                raise ValueError(f"no consumer group {group!r}: call ensure_group first")
            # Start at a random partition, so that a busy one does not starve the others.
            turn = random.randrange(len(offsets))
            delivered: list[Event] = []
            now = datetime.now(timezone.utc)
            for partition, delivered_through in offsets[turn:] + offsets[:turn]:
                if len(delivered) >= count:
                    break
                rows = connection.execute(
                    select(event_stream.c.position, event_stream.c.payload)
                    .where(event_stream.c.partition == partition, event_stream.c.position > delivered_through)
                    .order_by(event_stream.c.position).limit(count - len(delivered))).all()
                if not rows:
                    continue
                connection.execute(event_group_pending.insert(), [
                    {"group_name": group, "partition": partition, "position": position, "consumer": consumer,
                     "delivered_at": now, "deliveries": 1} for position, _ in rows])
                connection.execute(update(event_group_offsets)
                                   .where(event_group_offsets.c.group_name == group,
                                          event_group_offsets.c.partition == partition)
                                   .values(delivered_through=rows[-1].position))
                delivered.extend(event_from_bytes(payload, partition=partition, position=str(position))
                                 for position, payload in rows)
        return delivered

    def ack(self, group: str, events: Sequence[Event]) -> None:
        if not events:
            return
        positions: dict[int, list[int]] = {}
        for event in events:
            positions.setdefault(event.partition, []).append(_position(event.position))
        pending = event_group_pending.c
        # Each partition's delete on its own: acknowledging is idempotent, and what a failure leaves pending is
        # delivered again. A statement per partition, not per event: the driver sends an executemany as one
        # round trip per row, and a batch of 500 acknowledged that way took longer than indexing it.
        with self._transaction(single=True) as connection:
            for partition, acknowledged in sorted(positions.items()):
                connection.execute(delete(event_group_pending).where(
                    pending.group_name == group, pending.partition == partition, pending.position.in_(acknowledged)))

    def claim_stale(self, group: str, consumer: str, min_idle_seconds: float, count: int) -> list[Event]:
        now = datetime.now(timezone.utc)
        pending = event_group_pending.c
        with self._transaction() as connection:
            query = (select(pending.partition, pending.position, event_stream.c.payload)
                     .select_from(event_group_pending.outerjoin(event_stream, and_(
                         event_stream.c.partition == pending.partition,
                         event_stream.c.position == pending.position)))
                     .where(pending.group_name == group,
                            pending.delivered_at <= now - timedelta(seconds=min_idle_seconds))
                     .order_by(pending.partition, pending.position).limit(count))
            if self._is_postgres:
                # Two consumers claiming at once each take rows the other has not locked.
                query = query.with_for_update(of=event_group_pending, skip_locked=True)
            rows = connection.execute(query).all()
            claimed = [(partition, position, payload) for partition, position, payload in rows if payload is not None]
            trimmed = [(partition, position) for partition, position, payload in rows if payload is None]
            for partition, position in trimmed:
                connection.execute(delete(event_group_pending).where(
                    pending.group_name == group, pending.partition == partition, pending.position == position))
            for partition, position, _ in claimed:
                connection.execute(update(event_group_pending).where(
                    pending.group_name == group, pending.partition == partition, pending.position == position,
                ).values(consumer=consumer, delivered_at=now, deliveries=pending.deliveries + 1))
        return [event_from_bytes(payload, partition=partition, position=str(position))
                for partition, position, payload in claimed]

    def group_lag(self, group: str) -> int:
        offsets = event_group_offsets.c
        with self._transaction(read_only=True) as connection:
            lag = connection.execute(
                select(func.count()).select_from(event_stream.join(event_group_offsets, and_(
                    offsets.partition == event_stream.c.partition, offsets.group_name == group)))
                .where(event_stream.c.position > offsets.delivered_through)).scalar_one()
        return lag

    def groups(self) -> list[str]:
        with self._transaction(read_only=True) as connection:
            return list(connection.execute(select(event_group_offsets.c.group_name).distinct()
                                           .order_by(event_group_offsets.c.group_name)).scalars())

    # -- operations ------------------------------------------------------------------------------------------

    def trim(self) -> int:
        dropped = 0
        with self._transaction() as connection:
            partitions = connection.execute(select(event_partitions.c.partition, event_partitions.c.last_position,
                                                   event_partitions.c.trimmed_through)).all()
            for partition, last_position, trimmed_through in partitions:
                cutoff = self._cutoff(connection, partition, last_position)
                if cutoff is None or cutoff <= trimmed_through:
                    continue
                dropped += connection.execute(delete(event_stream).where(
                    event_stream.c.partition == partition, event_stream.c.position <= cutoff)).rowcount
                connection.execute(update(event_partitions).where(event_partitions.c.partition == partition)
                                   .values(trimmed_through=cutoff))
        return dropped

    def _cutoff(self, connection: Connection, partition: int, last_position: int) -> int | None:
        """The newest position the retention drops in the partition, or None."""
        if self.max_events is not None:
            return last_position - self.max_events if last_position > self.max_events else None
        expired_before = datetime.now(timezone.utc) - timedelta(seconds=self.max_age_seconds)
        return connection.execute(select(func.max(event_stream.c.position)).where(
            event_stream.c.partition == partition, event_stream.c.published_at < expired_before)).scalar()

    def ping(self) -> None:
        with self._transaction(read_only=True) as connection:
            connection.execute(text("SELECT 1"))

    def close(self) -> None:
        if self._listener is not None:
            self._listener.kill()
            self._listener = None
