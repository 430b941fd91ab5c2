"""The message store: its interface (base.py), its backends, and :func:`build_store`, the one place a process's
store stack is put together.

The stack, from the outside in: a span per call (when tracing is on), metrics (``METRICS_ENABLED``), coalescing
of identical concurrent reads (``COALESCE_READS``), then the backend named by ``MESSAGE_STORE``. Each outer layer is a
:class:`~app.messages.base.StoreDecorator`; reach a layer with ``store.layer(Kind)``.
"""
from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import Engine

from app.messages.base import MessageStore
from app.observability.tracing import tracing_enabled
from config import Settings


def _sql(settings: Settings, engine: Engine) -> MessageStore:
    from app.messages.sql import SqlMessageStore

    return SqlMessageStore(engine)


def _scylla(settings: Settings, engine: Engine) -> MessageStore:
    # Imported on use: the Cassandra driver is only loaded by processes that talk to ScyllaDB.
    from app.messages.scylla import ScyllaMessageStore

    return ScyllaMessageStore(settings)


def _dual(settings: Settings, engine: Engine) -> MessageStore:
    from app.messages.dual import DualMessageStore, WriteLog

    return DualMessageStore(BACKENDS[settings.dual_primary](settings, engine),
                            BACKENDS[settings.dual_secondary](settings, engine),
                            WriteLog(engine, stale_writer_seconds=settings.dual_stale_writer_seconds))


#: ``MESSAGE_STORE`` (and ``DUAL_PRIMARY``/``DUAL_SECONDARY``) names, each with the factory of its backend.
BACKENDS: dict[str, Callable[[Settings, Engine], MessageStore]] = {"sql": _sql, "scylla": _scylla, "dual": _dual}


def build_store(settings: Settings, engine: Engine) -> MessageStore:
    """The process's message store, as ``settings`` describe it. ``engine`` is the metadata database's, which
    the SQL backend and the dual-write log use too."""
    store = BACKENDS[settings.message_store](settings, engine)
    if settings.coalesce_reads:
        from app.messages.coalescing import CoalescingMessageStore
        from app.observability.metrics import COALESCED_READS

        store = CoalescingMessageStore(store, on_coalesced=COALESCED_READS.inc)
    if settings.metrics_enabled:
        from app.messages.instrumented import InstrumentedMessageStore

        store = InstrumentedMessageStore(store)
    if tracing_enabled(settings):
        from app.messages.traced import TracedMessageStore

        store = TracedMessageStore(store)
    return store
