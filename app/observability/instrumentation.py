"""Metrics around the database pool, without changing its interface."""
from __future__ import annotations

from sqlalchemy.pool import QueuePool

from app.observability.metrics import DB_POOL_IN_USE, DB_POOL_WAITING
from config import Settings


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


def pool_class(settings: Settings) -> type[QueuePool]:
    return InstrumentedQueuePool if settings.metrics_enabled else QueuePool
