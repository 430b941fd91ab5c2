"""Per-process resources: the SQL engine and sessions, the message store, the id generator, the event bus.

Everything is created lazily on first use, so nothing connects at import or in the gunicorn master, and each
worker builds its own after gevent has patched. A resource created before a fork is rebuilt in the child.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.events import EventBus, build_bus
from app.events.base import EventBus as DurableEventBus
from app.id_slots import LeasedSnowflakes, slots_for
from app.messages.base import MessageStore
from app.read_cache import ChannelVersions, ReadCache
from app.observability.instrumentation import instrument_store, pool_class
from config import Settings
from models.base import READ_ONLY_OPTION


def _make_green_psycopg2() -> None:
    """psycopg2 blocks the whole gevent hub unless it waits through gevent; only needed once patched."""
    from gevent import monkey

    if monkey.is_module_patched("socket"):
        from psycogreen.gevent import patch_psycopg

        patch_psycopg()


#: How long SQLite itself may wait for a lock (sleeping in C, with the hub stopped) before saying "locked".
SQLITE_BUSY_WAIT_MS = 1
#: How long a transaction waits for the write lock in all, cooperatively, as the 5 s busy timeout did before.
SQLITE_LOCK_TIMEOUT_SECONDS = 5.0
SQLITE_RETRY_FIRST_PAUSE_SECONDS = 0.0005
SQLITE_RETRY_MAX_PAUSE_SECONDS = 0.01


def _configure_sqlite(engine: Engine) -> None:
    # A busy SQLite database makes the driver sleep inside C, which would block the gevent hub. So each
    # process keeps one connection (greenlets queue for it cooperatively in the pool), and every transaction
    # that may write begins IMMEDIATE, so a read-then-write transaction never fails on a lock upgrade. One
    # marked read-only begins DEFERRED: in WAL mode it takes no lock and never waits for the other workers.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON",
                       f"busy_timeout={SQLITE_BUSY_WAIT_MS}"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        if connection.get_execution_options().get(READ_ONLY_OPTION):
            connection.exec_driver_sql("BEGIN")
            return
        # Another process (the other gunicorn worker) holding the write lock makes BEGIN IMMEDIATE wait. SQLite
        # waits by sleeping inside C, which would stop every greenlet of this worker, so it is only allowed a
        # millisecond per attempt and the rest of the wait happens here, where gevent can run the others.
        deadline = time.monotonic() + SQLITE_LOCK_TIMEOUT_SECONDS
        pause = SQLITE_RETRY_FIRST_PAUSE_SECONDS
        while True:
            try:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
                return
            except OperationalError as error:
                if "locked" not in str(error.orig) or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, SQLITE_RETRY_MAX_PAUSE_SECONDS)


def create_db_engine(settings: Settings) -> Engine:
    if settings.is_sqlite:
        database = settings.database_url.split("///", 1)[-1]
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            settings.database_url, poolclass=pool_class(settings), pool_size=1, max_overflow=0,
            pool_timeout=settings.db_pool_timeout, hide_parameters=True,
            connect_args={"check_same_thread": False, "timeout": 5},
        )
        _configure_sqlite(engine)
        return engine
    _make_green_psycopg2()
    return create_engine(
        settings.database_url,
        poolclass=pool_class(settings),
        # Statement parameters would put message content into error messages, and so into the logs.
        hide_parameters=True,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_timeout=settings.db_pool_timeout,
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": 5,
            "application_name": settings.application_name,
            "options": f"-c statement_timeout={settings.db_statement_timeout_ms}",
        },
    )


def _backend_store(name: str, settings: Settings, engine: Engine) -> MessageStore:
    if name == "scylla":
        from app.messages.scylla import ScyllaMessageStore

        return ScyllaMessageStore.from_settings(settings)
    from app.messages.sql import SqlMessageStore

    return SqlMessageStore(engine)


def create_message_store(settings: Settings, engine: Engine) -> MessageStore:
    if settings.message_store == "dual":
        from app.messages.dual import DualMessageStore, WriteLog

        store = DualMessageStore(_backend_store(settings.dual_primary, settings, engine),
                                 _backend_store(settings.dual_secondary, settings, engine), WriteLog(engine))
    else:
        store = _backend_store(settings.message_store, settings, engine)
    if settings.coalesce_reads:
        from app.messages.coalescing import CoalescingMessageStore
        from app.observability.metrics import COALESCED_READS

        store = CoalescingMessageStore(store, on_coalesced=COALESCED_READS.inc)
    # Always, whether or not this process keeps pages: another one against the same database may.
    return ChannelVersions(store, engine)


class Resources:
    """The resources of one process. ``create_app`` attaches one to the app as ``app.extensions["chatstore"]``."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.events = EventBus()
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._engine: Engine | None = None
        self._sessionmaker: sessionmaker | None = None
        self._store: MessageStore | None = None
        self._ids: LeasedSnowflakes | None = None
        self._read_cache: ReadCache | None = None
        self._event_bus: DurableEventBus | None = None

    def _check_fork(self) -> None:
        if os.getpid() != self._pid:
            # Inherited connections belong to the parent; drop them without closing the parent's sockets.
            if self._engine is not None:
                self._engine.dispose(close=False)
            self._engine = self._sessionmaker = self._store = self._ids = self._read_cache = None
            # The parent's bus connections are left to the parent, like its engine's.
            self._event_bus = None
            self._pid = os.getpid()

    @property
    def engine(self) -> Engine:
        self._check_fork()
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = create_db_engine(self.settings)
        return self._engine

    def session(self) -> Session:
        if self._sessionmaker is None or os.getpid() != self._pid:
            self._sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        return self._sessionmaker()

    @property
    def message_store(self) -> MessageStore:
        engine = self.engine
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = instrument_store(create_message_store(self.settings, engine), self.settings)
        return self._store

    @property
    def read_cache(self) -> ReadCache:
        self._check_fork()
        if self._read_cache is None:
            pages = self.settings.read_cache_pages if self.settings.coalesce_reads else 0
            self._read_cache = ReadCache(pages=pages)
        return self._read_cache

    @property
    def ids(self) -> LeasedSnowflakes:
        self._check_fork()
        if self._ids is None:
            with self._lock:
                if self._ids is None:
                    self._ids = LeasedSnowflakes(slots_for(self.settings.database_url))
        return self._ids

    @property
    def event_bus(self) -> DurableEventBus:
        """The durable event stream that ``EVENT_BUS`` names (app.events), built on first use in this process."""
        engine = self.engine
        if self._event_bus is None:
            with self._lock:
                if self._event_bus is None:
                    self._event_bus = build_bus(self.settings, engine)
        return self._event_bus

    def close(self) -> None:
        """Release everything this process holds (worker exit, CLI exit, test teardown)."""
        if os.getpid() != self._pid:
            return
        if self._event_bus is not None:
            self._event_bus.close()
            self._event_bus = None
        if self._ids is not None:
            self._ids.release()
        if self._store is not None:
            self._store.close()
        if self._engine is not None:
            self._engine.dispose()
        self._engine = self._sessionmaker = self._store = self._ids = self._read_cache = None
