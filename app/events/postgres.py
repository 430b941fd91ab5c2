"""PostgreSQL connections out of the pool: the relay's lock connection, and the SQL bus readers' LISTEN for new events.

A LISTEN (and a session-level advisory lock) belongs to one connection for as long as it lives, so these
connections are taken out of the pool. psycopg2 is cooperative through psycogreen's wait callback; the wait for
a notification is a ``select`` on the connection's socket through gevent, so it never blocks the hub.
"""
from __future__ import annotations

from gevent import select
from sqlalchemy import Engine


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
