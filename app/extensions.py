"""Per-process resources: the SQL engine and sessions, the message store, the id generator, the event bus.

Everything is created lazily on first use, so nothing connects at import or in the gunicorn master, and each
worker builds its own after gevent has patched. A resource created before a fork is rebuilt in the child.
"""
from __future__ import annotations

import os
import threading

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.events import build_bus
from app.events.base import EventBus
from app.id_slots import LeasedSnowflakes, slots_for
from app.messages import build_store
from app.messages.base import MessageStore
from app.observability.instrumentation import pool_class
from app.observability.tracing import trace_statements, tracing_enabled
from app.read_cache import ReadCache
from app.services.dispatch import SessionEvents, session_events
from app.sqlite import create_sqlite_engine
from config import Settings


def _make_green_psycopg2() -> None:
    """psycopg2 blocks the whole gevent hub unless it waits through gevent; only needed once patched."""
    from gevent import monkey

    if monkey.is_module_patched("socket"):
        from psycogreen.gevent import patch_psycopg

        patch_psycopg()


def create_db_engine(settings: Settings) -> Engine:
    engine = _create_db_engine(settings)
    if tracing_enabled(settings):
        trace_statements(engine)
    return engine


def _create_db_engine(settings: Settings) -> Engine:
    if settings.is_sqlite:
        return create_sqlite_engine(settings.database_url, poolclass=pool_class(settings),
                                    pool_timeout=settings.db_pool_timeout, hide_parameters=True)
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


class Resources:
    """The resources of one process. ``create_app`` attaches one to the app as ``app.extensions["chatstore"]``."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._engine: Engine | None = None
        self._sessionmaker: sessionmaker | None = None
        self._store: MessageStore | None = None
        self._ids: LeasedSnowflakes | None = None
        self._read_cache: ReadCache | None = None
        self._event_bus: EventBus | None = None

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
                    self._store = build_store(self.settings, engine)
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

    def session_events(self) -> SessionEvents:
        """What records the events of metadata writes in a session's transaction (nothing with EVENT_BUS=off)."""
        return session_events(self.ids, enabled=self.settings.events_enabled)

    @property
    def event_bus(self) -> EventBus:
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
