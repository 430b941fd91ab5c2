"""The relay: committed outbox rows onto the bus, in outbox id order, by exactly one active relay at a time.

Each pass reads the oldest rows, publishes them, and then deletes them. Delivery is at least once: a relay that
dies between publishing and deleting leaves the rows, and the next pass publishes the same event ids again. When
the bus (or the database) is down, passes fail and are retried with an exponential backoff; the rows wait in
the outbox, so writes keep succeeding and nothing is lost.

One active relay, so that a channel's events reach the bus in outbox order:
- PostgreSQL: ``pg_try_advisory_lock`` on a dedicated connection, held as long as the connection lives (a
  greenlet watches it, so a lost connection ends the leadership at once).
- SQLite: a row lease (``event_relay_lease``) renewed every third of its term. Not ``BEGIN IMMEDIATE`` around a
  pass: that would hold the database's only write lock (and the process's only connection) while publishing to
  a bus that may be slow or down, stopping every writer. The lease costs one write every few seconds, and an
  idle pass is one indexed read (tests/events/test_relay.py counts it), so polling every 20 ms is cheap.
A relay checks that it still leads right before it publishes; a lease holder stalled for longer than the
lease's safety margin between that check and its publish could overlap a successor, which is why the margin
is a third of the term, far above any publish (whose calls time out in seconds).

Waking: an idle relay looks at the outbox every 20 ms on either database, and a writer wakes its own worker's
relay after its commit. Writers do not NOTIFY: PostgreSQL serializes the commits of transactions that notify,
which would queue every writer behind the others.

Where it runs (``EVENT_RELAY``): ``worker`` (default) a greenlet in every gunicorn worker, started by
:func:`start_relay`, only the leader working; ``process`` ``flask events relay``; ``off`` none (the outbox
grows until one runs).
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import gevent
import gevent.event
import orjson
from opentelemetry.trace import SpanKind
from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.dialects import sqlite

from app.events.base import EventBus, EventBusUnavailable, event_from_bytes
from app.events.postgres import dedicated_connection, wait_for_notification
from app.observability.metrics import (
    EVENT_GROUP_LAG,
    EVENT_OUTBOX_DEPTH,
    EVENT_PUBLISH_FAILURES,
    EVENT_RELAY_LAG,
    EVENTS_PUBLISHED,
)
from app.observability.tracing import TRACER, first_sampled, links_to
from models.base import DATABASE_UNAVAILABLE, READ_ONLY, single_statements
from models.events import event_outbox, event_relay_lease

log = logging.getLogger(__name__)

#: The advisory lock key of "the relay" in a PostgreSQL database (any constant; derived so it reads as a name).
ADVISORY_LOCK_KEY = zlib.crc32(b"chatstore.events.relay")
LEASE_SECONDS = 10.0
#: Rows moved per pass: one publish call and one delete.
BATCH_SIZE = 500
#: How often an idle relay looks at the outbox.
IDLE_POLL_SECONDS = 0.02
#: How long a relay woken by a writer waits for more commits before its pass.
WAKE_LINGER_SECONDS = 0.005
#: How often the leader's lock connection is checked for being alive (PostgreSQL).
LOCK_WATCH_SECONDS = 1.0
#: How often a relay that does not lead tries to.
FOLLOWER_RETRY_SECONDS = LEASE_SECONDS / 3
#: How long after a failed write its events wait before the store is asked whether it landed: longer than any
#: store request (with its retries and speculative executions) can still be in flight.
UNCONFIRMED_GRACE_SECONDS = 30.0
FIRST_BACKOFF_SECONDS = 0.05
MAX_BACKOFF_SECONDS = 5.0
TRIM_INTERVAL_SECONDS = 60.0
METRICS_INTERVAL_SECONDS = 5.0


class Leadership(ABC):
    """Who, among the relays on one database, is the active one."""

    @abstractmethod
    def acquire(self) -> bool:
        """Become or stay the leader; True when this relay leads. Cheap when it already does."""

    @abstractmethod
    def confirm(self) -> bool:
        """Whether this relay still leads, safely enough to publish now."""

    @abstractmethod
    def release(self) -> None:
        """Stop leading (another relay may take over at once)."""


class AdvisoryLockLeadership(Leadership):
    """PostgreSQL: a session advisory lock on a dedicated connection. ``on_lost`` is called when the connection,
    and with it the lock, is gone."""

    def __init__(self, engine: Engine, on_lost):
        self.engine = engine
        self.on_lost = on_lost
        self._connection = None
        self._listener: gevent.Greenlet | None = None

    def acquire(self) -> bool:
        if self.confirm():
            return True
        self.release()
        import psycopg2

        try:
            connection = dedicated_connection(self.engine)
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
                locked = cursor.fetchone()[0]
        except (psycopg2.Error, *DATABASE_UNAVAILABLE) as error:
            log.warning("event relay cannot take its lock: %s", error)
            return False
        if not locked:
            connection.close()
            return False
        self._connection = connection
        self._listener = gevent.spawn(self._watch, connection)
        return True

    def _watch(self, connection) -> None:
        try:
            while True:
                wait_for_notification(connection, LOCK_WATCH_SECONDS)
        except Exception as error:  # the connection, and with it the lock, is gone: the relay stops leading
            log.warning("event relay lost its lock connection: %s", error)
            self._connection = None
            connection.close()
            self.on_lost()

    def confirm(self) -> bool:
        return self._connection is not None and not self._connection.closed

    def release(self) -> None:
        if self._listener is not None:
            self._listener.kill()
            self._listener = None
        if self._connection is not None:
            # Unlock before closing: closing alone releases the lock only once the server has noticed the session
            # end, so a successor asking at once could still be refused.
            import psycopg2

            with contextlib.suppress(psycopg2.Error):
                with self._connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
            self._connection.close()
            self._connection = None


class LeaseLeadership(Leadership):
    """SQLite: a lease in a one-row table, taken when it has expired, renewed every third of its term."""

    def __init__(self, engine: Engine, seconds: float = LEASE_SECONDS):
        self.engine = engine
        self.seconds = seconds
        self.holder = uuid.uuid4().hex
        self._held_until = 0.0
        self._renew_at = 0.0

    def acquire(self) -> bool:
        now = time.monotonic()
        if now < self._renew_at:
            return True
        wall = datetime.now(timezone.utc)
        expires = wall + timedelta(seconds=self.seconds)
        with self.engine.begin() as connection:
            taken = connection.execute(
                sqlite.insert(event_relay_lease).values(id=1, holder=self.holder, expires_at=expires)
                .on_conflict_do_nothing()).rowcount == 1 or connection.execute(
                update(event_relay_lease)
                .where(event_relay_lease.c.id == 1,
                       (event_relay_lease.c.holder == self.holder) | (event_relay_lease.c.expires_at < wall))
                .values(holder=self.holder, expires_at=expires)).rowcount == 1
        if taken:
            self._held_until = now + self.seconds
            self._renew_at = now + self.seconds / 3
        else:
            self._held_until = self._renew_at = 0.0
        return taken

    def confirm(self) -> bool:
        # A third of the term to spare: the margin against a stall between this check and the publish.
        return time.monotonic() < self._held_until - self.seconds / 3

    def release(self) -> None:
        if self._held_until == 0.0:
            return
        self._held_until = self._renew_at = 0.0
        with self.engine.begin() as connection:
            connection.execute(update(event_relay_lease)
                               .where(event_relay_lease.c.id == 1, event_relay_lease.c.holder == self.holder)
                               .values(expires_at=datetime.now(timezone.utc)))


class EventRelay:
    """Moves the outbox onto ``bus``. :meth:`start` runs it in a greenlet; :meth:`run` in the caller's.

    ``confirm`` decides the events of writes whose outcome was unknown (outbox rows with an ``unconfirmed``
    check): given the check, True publishes them, False drops them, None (the store cannot tell now) keeps them
    for a later pass. It is asked only once ``unconfirmed_grace_seconds`` have passed since the write, when the
    write can no longer be in flight. Such rows wait without holding back the rows after them; without
    ``confirm`` they wait for a relay that has one.
    """

    def __init__(self, engine: Engine, bus: EventBus, *, batch_size: int = BATCH_SIZE,
                 confirm: Callable[[dict], bool | None] | None = None,
                 unconfirmed_grace_seconds: float = UNCONFIRMED_GRACE_SECONDS):
        self.engine = engine
        self.bus = bus
        self.batch_size = batch_size
        self.confirm = confirm
        self.unconfirmed_grace_seconds = unconfirmed_grace_seconds
        self._read_engine = engine.execution_options(**READ_ONLY)
        is_postgres = engine.dialect.name == "postgresql"
        self.leadership: Leadership = (AdvisoryLockLeadership(engine, self.wake) if is_postgres
                                       else LeaseLeadership(engine))
        self._idle_seconds = IDLE_POLL_SECONDS
        self._wakeup = gevent.event.Event()
        self._stopping = gevent.event.Event()
        self._greenlet: gevent.Greenlet | None = None
        self._trimmed_at = self._measured_at = float("-inf")

    def wake(self) -> None:
        """Look at the outbox now (a writer calls it after its commit, through :func:`wake`)."""
        self._wakeup.set()

    def relay_once(self) -> int:
        """One pass, if this relay leads: publish up to ``batch_size`` of the oldest rows and delete them.

        Returns how many events were published. Raises :class:`EventBusUnavailable` (the rows stay) or the
        database's operational error.
        """
        settled = datetime.now(timezone.utc) - timedelta(seconds=self.unconfirmed_grace_seconds)
        # The read and the delete stand alone: one round trip each on PostgreSQL instead of three, on the way
        # from every write to every consumer (an idle pass is this read and nothing else).
        with single_statements(self._read_engine) as connection:
            rows = connection.execute(
                select(event_outbox.c.id, event_outbox.c.payload, event_outbox.c.unconfirmed)
                .where(event_outbox.c.unconfirmed.is_(None) | (event_outbox.c.created_at <= settled))
                .order_by(event_outbox.c.id).limit(self.batch_size)).all()
        if not rows or not self.leadership.confirm():
            return 0
        publish, done = [], []
        for row in rows:
            verdict = True if row.unconfirmed is None else self._decide(orjson.loads(row.unconfirmed))
            if verdict is not None:
                done.append(row.id)
            if verdict:
                publish.append(event_from_bytes(row.payload))
        if publish:
            try:
                # One span per batch, linked to the trace of each event's write (OpenTelemetry's messaging
                # convention for a batch: a span cannot have many parents), in the first sampled one.
                traceparents = [event.traceparent for event in publish]
                with TRACER.start_as_current_span(
                        "chatstore.events.publish", context=first_sampled(traceparents), kind=SpanKind.PRODUCER,
                        links=links_to(traceparents),
                        attributes={"messaging.system": self.bus.backend,
                                    "messaging.batch.message_count": len(publish)}):
                    self.bus.publish(publish)
            except EventBusUnavailable:
                EVENT_PUBLISH_FAILURES.inc()
                raise
            EVENTS_PUBLISHED.inc(len(publish))
        if done:
            with single_statements(self.engine) as connection:
                connection.execute(delete(event_outbox).where(event_outbox.c.id.in_(done)))
        return len(publish)

    def _decide(self, check: dict) -> bool | None:
        """Whether the events of an unknown-outcome write are published (True), dropped (False), or wait (None)."""
        if self.confirm is None:
            return None
        verdict = self.confirm(check)
        if verdict is False:
            log.info("dropping the events of a failed write that did not land: %s", check)
        return verdict

    def run(self) -> None:
        """Relay until :meth:`stop`: lead when possible, move what is there, wait to be woken, back off on failure."""
        backoff = FIRST_BACKOFF_SECONDS
        while not self._stopping.is_set():
            self._wakeup.clear()
            try:
                if not self.leadership.acquire():
                    self._forget_measurements()
                    self._pause(FOLLOWER_RETRY_SECONDS)
                    continue
                moved = self.relay_once()
                self._housekeeping()
            except Exception as error:  # noqa: BLE001 (a bug is logged loudly, but the relay keeps relaying)
                if isinstance(error, (EventBusUnavailable, *DATABASE_UNAVAILABLE)):
                    log.warning("event relay pass failed, retrying in %.2f s: %s", backoff, error)
                else:
                    log.exception("event relay pass failed unexpectedly, retrying in %.2f s", backoff)
                self._pause(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            backoff = FIRST_BACKOFF_SECONDS
            if moved < self.batch_size:
                self._pause(self._idle_seconds)
                if self._wakeup.is_set() and not self._stopping.is_set():
                    # Woken by a commit: let the commits right behind it join the pass. Under load a pass per
                    # commit would cost three transactions per event; the linger makes them a few per batch.
                    self._stopping.wait(WAKE_LINGER_SECONDS)
        with contextlib.suppress(*DATABASE_UNAVAILABLE):
            self.leadership.release()
        self._forget_measurements()

    def _pause(self, seconds: float) -> None:
        """Wait until woken, stopped, or ``seconds`` have passed."""
        gevent.wait([self._wakeup, self._stopping], timeout=seconds, count=1)

    def _housekeeping(self) -> None:
        """The leader's periodic work: retention, and the outbox and group gauges."""
        now = time.monotonic()
        if now - self._trimmed_at >= TRIM_INTERVAL_SECONDS:
            self._trimmed_at = now
            dropped = self.bus.trim()
            if dropped:
                log.info("event retention dropped %d events", dropped)
        if now - self._measured_at >= METRICS_INTERVAL_SECONDS:
            self._measured_at = now
            self.measure()

    def measure(self) -> None:
        """Set the outbox depth, relay lag and consumer-group lag gauges."""
        with self._read_engine.begin() as connection:
            depth, oldest = connection.execute(select(func.count(), func.min(event_outbox.c.created_at))).one()
        EVENT_OUTBOX_DEPTH.set(depth)
        EVENT_RELAY_LAG.set(0.0 if oldest is None else
                            max(0.0, (datetime.now(timezone.utc) - oldest).total_seconds()))
        for group in self.bus.groups():
            EVENT_GROUP_LAG.labels(group).set(self.bus.group_lag(group))

    def _forget_measurements(self) -> None:
        """A relay that does not lead reports nothing: the gauges take the maximum over live workers."""
        EVENT_OUTBOX_DEPTH.set(0)
        EVENT_RELAY_LAG.set(0)
        self._measured_at = float("-inf")

    def start(self) -> gevent.Greenlet:
        self._greenlet = gevent.spawn(self.run)
        return self._greenlet

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the current pass, releasing the leadership."""
        self._stopping.set()
        if self._greenlet is not None:
            self._greenlet.join(timeout)
            self._greenlet = None


_running: dict[int, EventRelay] = {}


def start_relay(resources, confirm: Callable[[dict], bool | None] | None = None) -> EventRelay | None:
    """Start this process's relay greenlet when ``EVENT_RELAY=worker``; idempotent per process (and after fork).

    ``resources`` is the process's :class:`app.extensions.Resources`: its engine and ``event_bus`` are used.
    Returns the relay, or None when relays run elsewhere (``process``) or not at all (``off``).
    """
    if resources.settings.event_relay != "worker" or not resources.settings.events_enabled:
        return None
    relay = _running.get(os.getpid())
    if relay is None:
        relay = _running[os.getpid()] = EventRelay(resources.engine, resources.event_bus, confirm=confirm)
        relay.start()
    return relay


def stop_relay() -> None:
    """Stop this process's relay greenlet, if it started one (worker exit, tests)."""
    relay = _running.pop(os.getpid(), None)
    if relay is not None:
        relay.stop()


def wake() -> None:
    """Wake this process's relay, if it runs one: a writer calls it after committing events to the outbox."""
    relay = _running.get(os.getpid())
    if relay is not None:
        relay.wake()
