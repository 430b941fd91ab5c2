"""Per-process resources: the SQL engine and sessions, the message store, the id generator, the event bus.

Everything is created lazily on first use, so nothing connects at import or in the gunicorn master, and each
worker builds its own after gevent has patched. A resource created before a fork is rebuilt in the child.
"""
from __future__ import annotations

import functools
import os
import threading
import time

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.blobs import build_blob_store, signing_key
from app.blobs.base import BlobStore
from app.events import build_bus
from app.events.base import EventBus
from app.id_slots import LeasedSnowflakes, slots_for
from app.messages import build_store
from app.messages.base import MessageStore
from app.observability.instrumentation import pool_class
from app.observability.tracing import trace_statements, tracing_enabled
from app.read_cache import ReadCache
from app.search import build_engine
from app.search.base import SearchEngine
from app.services.dispatch import SessionEvents, session_events
from app.sqlite import create_sqlite_engine
from config import Settings


def _make_green_psycopg2(response_timeout: float) -> None:
    """psycopg2 blocks the whole gevent hub unless it waits through gevent; only needed once patched.

    The wait is bounded (psycogreen's is not): a server that stops answering without closing its connections (a
    frozen process, a host gone from the network) leaves the socket silent, and the kernel's keepalives and
    statement_timeout cannot end that wait. The bound is per process: the last engine made sets it.
    """
    from gevent import monkey

    if monkey.is_module_patched("socket"):
        from psycopg2 import extensions

        extensions.set_wait_callback(functools.partial(_wait_for_postgres, response_timeout=response_timeout))


def _wait_for_postgres(connection, response_timeout: float) -> None:
    """psycopg2's wait callback: poll the connection, waiting through gevent, for at most ``response_timeout``
    seconds in all. Past it, the error's text is one SQLAlchemy takes for a lost connection, so the connection
    is dropped (and the pool's others, which may be as dead) and the request answered 503."""
    import psycopg2
    from gevent.socket import wait_read, wait_write
    from psycopg2 import extensions

    deadline = time.monotonic() + response_timeout
    while True:
        state = connection.poll()
        if state == extensions.POLL_OK:
            return
        left = deadline - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError
            if state == extensions.POLL_READ:
                wait_read(connection.fileno(), timeout=left)
            elif state == extensions.POLL_WRITE:
                wait_write(connection.fileno(), timeout=left)
            else:
                raise psycopg2.OperationalError(f"Bad result from poll: {state!r}")
        except TimeoutError:
            raise psycopg2.OperationalError(
                f"could not receive data from server: no answer within {response_timeout:g} s") from None


def create_db_engine(settings: Settings) -> Engine:
    engine = _create_db_engine(settings)
    if tracing_enabled(settings):
        trace_statements(engine)
    return engine


def _create_db_engine(settings: Settings) -> Engine:
    if settings.is_sqlite:
        return create_sqlite_engine(settings.database_url, poolclass=pool_class(settings),
                                    pool_timeout=settings.db_pool_timeout, hide_parameters=True)
    _make_green_psycopg2(settings.db_response_timeout)
    engine = create_engine(
        settings.database_url,
        poolclass=pool_class(settings),
        # Statement parameters would put message content into error messages, and so into the logs.
        hide_parameters=True,
        # Twice DB_POOL_SIZE, all kept, rather than DB_POOL_SIZE kept and as many again as overflow: the same
        # ceiling, but an overflow connection is closed when it is returned to a full pool, so under a load of
        # more concurrent requests than the pool a worker kept connecting and disconnecting (py-spy: 9% of a
        # cached page's CPU on PostgreSQL in connect and close, and a server backend started per connection).
        pool_size=2 * settings.db_pool_size,
        max_overflow=0,
        pool_timeout=settings.db_pool_timeout,
        connect_args={
            "connect_timeout": 5,
            "application_name": settings.application_name,
            "options": f"-c statement_timeout={settings.db_statement_timeout_ms}",
            # Where nothing waits through the callback above (a CLI process without gevent): the kernel gives a
            # connection up once what it sent goes unacknowledged that long, or its keepalives go unanswered.
            "tcp_user_timeout": round(settings.db_response_timeout * 1000),
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
        },
    )
    _ping_when_idle(engine)
    return engine


#: A pooled PostgreSQL connection unused this long is checked (a round trip) before it is handed out.
PING_AFTER_IDLE_SECONDS = 5.0
_CHECKED_IN_AT = "chatstore_checked_in_at"


def _ping_when_idle(engine: Engine) -> None:
    """Check a pooled connection before use only when it sat unused for :data:`PING_AFTER_IDLE_SECONDS`.

    SQLAlchemy's ``pool_pre_ping`` checks it on every checkout: a round trip each time a request takes a
    connection (three or four times per request), a tenth of a create's worker CPU on PostgreSQL in py-spy's
    profile (docs/measurements.md). A connection in steady use is known to be alive from its last statement; one
    that sat idle may have been closed by the server or a proxy, and is checked. A connection that dies between
    uses anyway (the server restarted) fails its statement, which is answered 503 like any database failure, and
    SQLAlchemy then replaces every connection of the pool opened before the failure."""
    from sqlalchemy import event
    from sqlalchemy import exc as sa_exc

    @event.listens_for(engine, "checkin")
    def checked_in(_dbapi_connection, record) -> None:
        record.info[_CHECKED_IN_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def checked_out(dbapi_connection, record, _proxy) -> None:
        # ``info`` belongs to the DBAPI connection: a new one has no time, and needs no check.
        checked_in_at = record.info.get(_CHECKED_IN_AT)
        if checked_in_at is None or time.monotonic() - checked_in_at < PING_AFTER_IDLE_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # The pool drops this connection and hands out another (a new one, if need be).
            raise sa_exc.DisconnectionError("pooled connection lost while idle") from error
        if not alive:
            raise sa_exc.DisconnectionError("pooled connection lost while idle")


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
        self._blob_store: BlobStore | None = None
        self._signing_key: bytes | None = None
        self._search_engine: SearchEngine | None = None

    def _check_fork(self) -> None:
        if os.getpid() != self._pid:
            # Inherited connections belong to the parent; drop them without closing the parent's sockets.
            if self._engine is not None:
                self._engine.dispose(close=False)
            self._engine = self._sessionmaker = self._store = self._ids = self._read_cache = None
            # The parent's bus connections are left to the parent, like its engine's.
            self._event_bus = None
            # The S3 client is rebuilt by the store itself after a fork; the filesystem holds nothing open.
            self._search_engine = None
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

    @property
    def blob_store(self) -> BlobStore:
        """Where attachments' bytes live (BLOB_STORE), built on first use."""
        if self._blob_store is None:
            with self._lock:
                if self._blob_store is None:
                    self._blob_store = build_blob_store(self.settings)
        return self._blob_store

    @property
    def attachment_signing_key(self) -> bytes:
        if self._signing_key is None:
            self._signing_key = signing_key(self.settings)
        return self._signing_key

    @property
    def search_engine(self) -> SearchEngine:
        """The search engine that ``SEARCH_ENGINE`` names (app.search), built on first use in this process."""
        engine = self.engine
        if self._search_engine is None:
            with self._lock:
                if self._search_engine is None:
                    self._search_engine = build_engine(self.settings, engine)
        return self._search_engine

    def close(self) -> None:
        """Release everything this process holds (worker exit, CLI exit, test teardown)."""
        if os.getpid() != self._pid:
            return
        if self._search_engine is not None:
            self._search_engine.close()
            self._search_engine = None
        if self._event_bus is not None:
            self._event_bus.close()
            self._event_bus = None
        if self._ids is not None:
            self._ids.release()
        if self._store is not None:
            self._store.close()
        if self._blob_store is not None:
            self._blob_store.close()
            self._blob_store = None
        if self._engine is not None:
            self._engine.dispose()
        self._engine = self._sessionmaker = self._store = self._ids = self._read_cache = None
