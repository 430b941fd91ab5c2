"""The search indexer: a consumer group of the event stream that keeps the engine's index current.

Each pass takes up to ``batch_size`` events the group has not had (:meth:`EventBus.read_group`), turns them into
index changes (app.search.documents), applies them to the engine in one bulk write, then acknowledges them. A
consumer that dies between the write and the acknowledgement leaves its events pending; another consumer claims
them after ``CLAIM_IDLE_SECONDS`` and applies them again, which changes nothing (writes are idempotent and an
older version never replaces a newer one). Any number of consumers may run: the group hands each event to one.

Beside it, a backfill greenlet rebuilds the guilds queued for it (a guild searched before it was ever indexed,
whose history predates the index) with app.search.reindex, one at a time per process, taking over guilds whose
rebuilder died.

Where it runs (``SEARCH_INDEXER``): ``worker`` (default) a greenlet in every gunicorn worker, started by
:func:`start_indexer`; ``process`` ``flask search indexer``; ``off`` none.

Metrics: ``chatstore_search_indexed_total`` (events applied), ``chatstore_search_index_failures_total``,
``chatstore_search_index_lag_seconds`` (from an event's id, minted at its write, to its being searchable).
"""
from __future__ import annotations

import logging
import os
import socket
import time
from datetime import datetime, timedelta, timezone

import gevent
import gevent.event
from opentelemetry.trace import SpanKind
from sqlalchemy import Engine

from app.events.base import EventBus, EventBusUnavailable
from app.ids import snowflake_ms
from app.messages.base import MessageStore, StoreUnavailable
from app.observability.metrics import SEARCH_INDEX_FAILURES, SEARCH_INDEX_LAG, SEARCH_INDEXED
from app.observability.tracing import TRACER, first_sampled, links_to
from app.search.base import SearchEngine, SearchUnavailable
from app.search.documents import changes_of
from app.search.reindex import Reindexer
from models.base import DATABASE_UNAVAILABLE

log = logging.getLogger(__name__)

GROUP = "search-indexer"
BATCH_SIZE = 500
#: How long a read waits for new events before the loop looks around (stop, stale claims) again.
BLOCK_SECONDS = 0.5
#: Events delivered to a consumer and not acknowledged for this long are taken over (their consumer died).
CLAIM_IDLE_SECONDS = 30.0
CLAIM_INTERVAL_SECONDS = 10.0
#: A guild rebuild whose owner has not written for this long is taken over.
REINDEX_STALE_SECONDS = 60.0
BACKFILL_POLL_SECONDS = 1.0
PRUNE_INTERVAL_SECONDS = 600.0
FIRST_BACKOFF_SECONDS = 0.05
MAX_BACKOFF_SECONDS = 5.0
#: The most pins a channel can have is far below this; one read gets them all.
MAX_PINS_READ = 1000
_TRANSIENT = (EventBusUnavailable, SearchUnavailable, StoreUnavailable, *DATABASE_UNAVAILABLE)


def consumer_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class SearchIndexer:
    """Feeds ``engine`` from ``bus``; reads pins from ``store`` and rebuilds queued guilds from it.

    ``tombstone_seconds`` is how long deletes are remembered: at least the stream's retention, the longest a
    redelivered event can come late.
    """

    def __init__(self, bus: EventBus, engine: SearchEngine, store: MessageStore, database: Engine, *,
                 consumer: str | None = None, batch_size: int = BATCH_SIZE, tombstone_seconds: int = 86400,
                 backfill: bool = True):
        self.bus = bus
        self.engine = engine
        self.store = store
        self.database = database
        self.consumer = consumer or consumer_name()
        self.batch_size = batch_size
        self.tombstone_seconds = tombstone_seconds
        self.backfill = backfill
        self._stopping = gevent.event.Event()
        self._greenlets: list[gevent.Greenlet] = []
        self._group_ready = False
        self._claimed_at = self._pruned_at = float("-inf")

    def _pins_of(self, channel_id: int) -> frozenset[int]:
        return frozenset(pin.message_id for pin in self.store.list_pins(channel_id, before=None, limit=MAX_PINS_READ))

    def index_once(self, block_seconds: float = 0) -> int:
        """One pass: apply and acknowledge up to ``batch_size`` events (stale ones of dead consumers first).
        Returns how many events were taken."""
        if not self._group_ready:
            self.bus.ensure_group(GROUP)
            self._group_ready = True
        events = []
        now = time.monotonic()
        if now - self._claimed_at >= CLAIM_INTERVAL_SECONDS:
            self._claimed_at = now
            events = self.bus.claim_stale(GROUP, self.consumer, CLAIM_IDLE_SECONDS, self.batch_size)
        if not events:
            events = self.bus.read_group(GROUP, self.consumer, self.batch_size, block_seconds)
        if not events:
            return 0
        traceparents = [event.traceparent for event in events]
        try:
            # One span per batch, in the first sampled write's trace and linked to the others (as the relay does).
            with TRACER.start_as_current_span(
                    "chatstore.search.index", context=first_sampled(traceparents), kind=SpanKind.CONSUMER,
                    links=links_to(traceparents), attributes={"messaging.batch.message_count": len(events)}):
                self.engine.apply(self._changes(events))
        except Exception:
            SEARCH_INDEX_FAILURES.inc()
            raise
        self.bus.ack(GROUP, events)
        SEARCH_INDEXED.inc(len(events))
        searchable_ms = time.time() * 1000
        for event in events:
            SEARCH_INDEX_LAG.observe(max(0.0, (searchable_ms - snowflake_ms(event.id)) / 1000))
        return len(events)

    def _changes(self, events) -> list:
        """The batch's index changes. An event that cannot be read as its type says (a bug upstream) is logged,
        counted as a failure and skipped: retrying it would stop the group behind it for good. A store that cannot
        answer (for pins) fails the batch, which is retried."""
        changes = []
        for event in events:
            try:
                changes.extend(changes_of([event], self._pins_of))
            except _TRANSIENT:
                raise
            except Exception:  # noqa: BLE001 (logged with its traceback; see the docstring)
                SEARCH_INDEX_FAILURES.inc()
                log.exception("search indexer skips event %s (%s), which it cannot read", event.id, event.type)
        return changes

    def drain(self) -> int:
        """Index until no event is left (tests, the CLI's ``--once``)."""
        total = 0
        while (taken := self.index_once()) > 0:
            total += taken
        return total

    def run(self) -> None:
        """Index until :meth:`stop`, backing off while the bus, the engine or the store is down."""
        backoff = FIRST_BACKOFF_SECONDS
        while not self._stopping.is_set():
            try:
                self.index_once(BLOCK_SECONDS)
                self._prune()
            except Exception as error:  # noqa: BLE001 (a bug is logged loudly, but the indexer keeps indexing)
                if isinstance(error, _TRANSIENT):
                    log.warning("search indexer pass failed, retrying in %.2f s: %s", backoff, error)
                else:
                    log.exception("search indexer pass failed unexpectedly, retrying in %.2f s", backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            backoff = FIRST_BACKOFF_SECONDS

    def _prune(self) -> None:
        now = time.monotonic()
        if now - self._pruned_at >= PRUNE_INTERVAL_SECONDS:
            self._pruned_at = now
            self.engine.prune_tombstones(datetime.now(timezone.utc) - timedelta(seconds=self.tombstone_seconds))

    def backfill_once(self) -> bool:
        """Rebuild one queued (or orphaned) guild, if there is one; True when one was taken."""
        state = self.engine.claim_reindex(self.consumer, REINDEX_STALE_SECONDS)
        if state is None:
            return False
        log.info("search backfill of guild %s starts (%d documents indexed before)", state.guild_id,
                 state.documents_indexed)
        finished = Reindexer(self.engine, self.database, self.store, owner=self.consumer,
                             should_stop=self._stopping.is_set).resume(state)
        if finished is not None:
            log.info("search backfill of guild %s done: %d documents", state.guild_id, finished.documents_indexed)
        return True

    def run_backfill(self) -> None:
        while not self._stopping.is_set():
            try:
                if self.backfill_once():
                    continue
            except Exception as error:  # noqa: BLE001 (logged; the guild is taken over once its heartbeat is stale)
                if isinstance(error, _TRANSIENT):
                    log.warning("search backfill failed: %s", error)
                else:
                    log.exception("search backfill failed unexpectedly")
            self._stopping.wait(BACKFILL_POLL_SECONDS)

    def start(self) -> None:
        self._greenlets = [gevent.spawn(self.run)]
        if self.backfill:
            self._greenlets.append(gevent.spawn(self.run_backfill))

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the current pass (a rebuild stops between batches; its checkpoint stays)."""
        self._stopping.set()
        gevent.joinall(self._greenlets, timeout=timeout)
        self._greenlets = []


_running: dict[int, SearchIndexer] = {}


def build_indexer(resources, **options) -> SearchIndexer:
    """An indexer over the process's :class:`app.extensions.Resources`."""
    from config import retention_of

    max_age, _ = retention_of(resources.settings.event_retention)
    return SearchIndexer(resources.event_bus, resources.search_engine, resources.message_store, resources.engine,
                         tombstone_seconds=max(max_age or 0, 86400), **options)


def start_indexer(resources) -> SearchIndexer | None:
    """Start this process's indexer greenlets when ``SEARCH_INDEXER=worker``; idempotent per process."""
    settings = resources.settings
    if settings.search_indexer != "worker" or not settings.search_enabled:
        return None
    indexer = _running.get(os.getpid())
    if indexer is None:
        indexer = _running[os.getpid()] = build_indexer(resources)
        indexer.start()
    return indexer


def stop_indexer() -> None:
    indexer = _running.pop(os.getpid(), None)
    if indexer is not None:
        indexer.stop()
