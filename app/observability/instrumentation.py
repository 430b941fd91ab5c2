"""Metrics around the message store and the database pool, without changing either's interface."""
from __future__ import annotations

import abc
import functools
import time

from sqlalchemy.pool import QueuePool

from app.messages.base import MessageStore, StoreUnavailable
from app.observability.metrics import DB_POOL_IN_USE, DB_POOL_WAITING, STORE_CALL_DURATION, STORE_CALLS
from config import Settings


class InstrumentedMessageStore(MessageStore):
    """A MessageStore that times and counts every call of the interface, then delegates to ``store``.

    It is a MessageStore itself, so callers cannot tell it from the backend; attributes outside the
    interface (a backend's own helpers) are forwarded unchanged.
    """

    def __init__(self, store: MessageStore):
        self.store = store
        self.backend = store.backend

    def __getattr__(self, name: str):
        return getattr(self.store, name)

    def __repr__(self) -> str:
        return f"InstrumentedMessageStore({self.store!r})"


def _timed(operation: str):
    interface_method = getattr(MessageStore, operation)

    # updated=() so that the interface's __isabstractmethod__ is not copied onto the implementation.
    @functools.wraps(interface_method, updated=())
    def call(self: InstrumentedMessageStore, *args, **kwargs):
        started = time.perf_counter()
        outcome = "error"
        try:
            result = getattr(self.store, operation)(*args, **kwargs)
            outcome = "ok"
            return result
        except StoreUnavailable:
            outcome = "unavailable"
            raise
        finally:
            labels = (self.backend, operation, outcome)
            STORE_CALLS.labels(*labels).inc()
            STORE_CALL_DURATION.labels(*labels).observe(time.perf_counter() - started)

    return call


def _delegated(name: str):
    @functools.wraps(getattr(MessageStore, name), updated=())
    def call(self: InstrumentedMessageStore, *args, **kwargs):
        return getattr(self.store, name)(*args, **kwargs)

    return call


def _implement_interface(proxy: type[InstrumentedMessageStore]) -> None:
    """Give ``proxy`` every method of MessageStore. Built from the interface itself, so a method added to
    MessageStore is measured without touching this file. Private methods are a backend's own steps inside a
    public call (already timed as that call), so they are only delegated."""
    for name, member in vars(MessageStore).items():
        if callable(member) and not name.startswith("__"):
            setattr(proxy, name, _delegated(name) if name.startswith("_") else _timed(name))
    abc.update_abstractmethods(proxy)


_implement_interface(InstrumentedMessageStore)


class InstrumentedQueuePool(QueuePool):
    """SQLAlchemy's QueuePool, reporting connections checked out and checkouts waiting.

    ``recreate()`` (what ``engine.dispose()`` calls) builds the same class, so the metrics survive a dispose.
    """

    def _do_get(self):
        DB_POOL_WAITING.inc()
        try:
            return super()._do_get()
        finally:
            DB_POOL_WAITING.dec()
            DB_POOL_IN_USE.set(self.checkedout())

    def _do_return_conn(self, record) -> None:
        super()._do_return_conn(record)
        DB_POOL_IN_USE.set(self.checkedout())

def instrument_store(store: MessageStore, settings: Settings) -> MessageStore:
    return InstrumentedMessageStore(store) if settings.metrics_enabled else store


def pool_class(settings: Settings) -> type[QueuePool]:
    return InstrumentedQueuePool if settings.metrics_enabled else QueuePool
