"""PostgreSQL connections out of the pool: the relay's lock connection, and the SQL bus readers' LISTEN for new events;
and pooled connections for statements that need no transaction around them.

A LISTEN (and a session-level advisory lock) belongs to one connection for as long as it lives, so these
connections are taken out of the pool. psycopg2 is cooperative through psycogreen's wait callback; the wait for
a notification is a ``select`` on the connection's socket through gevent, so it never blocks the hub.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from gevent import select
from sqlalchemy import Connection, Engine

from models.base import READ_ONLY


def dedicated_connection(engine: Engine, *channels: str):
    """A psycopg2 connection of the engine's database, out of its pool, in autocommit, listening on ``channels``."""
    pooled = engine.raw_connection()
    connection = pooled.driver_connection
    pooled.detach()
    connection.autocommit = True
    with connection.cursor() as cursor:
        for channel in channels:
            cursor.execute(f"LISTEN {channel}")
    return connection


def wait_for_notification(connection, timeout: float) -> bool:
    """Wait up to ``timeout`` for a notification on ``connection``; True when one (or more) arrived.

    Raises the driver's error when the connection is lost, so the caller reconnects.
    """
    if not connection.notifies:
        readable, _, _ = select.select([connection], [], [], timeout)
        if readable:
            connection.poll()
    arrived = bool(connection.notifies)
    connection.notifies.clear()
    return arrived


@contextmanager
def single_statements(engine: Engine, *, read_only: bool = False) -> Iterator[Connection]:
    """A connection for statements each of which stands alone (a read of one query, an idempotent delete).

    On PostgreSQL its driver is in autocommit: psycopg2 otherwise sends ``BEGIN`` and ``COMMIT`` as round trips
    of their own, so one statement costs three, and on a worker busy with requests each round trip waits its turn
    on the hub (about 30 ms each under the create benchmark: most of what the relay and the search indexer
    spent). Elsewhere (SQLite) a transaction as usual, read-only when ``read_only``."""
    if engine.dialect.name != "postgresql":
        with (engine.execution_options(**READ_ONLY) if read_only else engine).begin() as connection:
            yield connection
        return
    with engine.connect() as connection:
        # The driver's flag directly, as models.base does for its statement transactions: SQLAlchemy's isolation
        # level option costs more CPU than the round trips it saves.
        driver = connection.connection.driver_connection
        driver.autocommit = True
        try:
            yield connection
        finally:
            if not connection.invalidated and not driver.closed:
                driver.autocommit = False
