"""The outbox: events written in the writer's own transaction, so an event exists iff its write committed.

The writer calls :func:`append` on the connection of the transaction that writes the message, after locking the
channel's row; the relay (app.events.relay) later moves the rows, in id order, onto the bus. Because the
channel's row lock is held until commit, the outbox ids of one channel's events are in commit order.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

import orjson
from sqlalchemy.engine import Connection

from app.events.base import Event, event_to_bytes
from models.events import event_outbox

__all__ = ["append", "event_outbox"]

_INSERT = event_outbox.insert()


def append(connection: Connection, events: Sequence[Event], *, unconfirmed: dict | None = None) -> None:
    """Insert ``events``, in order, in the caller's open transaction on ``connection``.

    Nothing is visible to the relay before the caller commits, and nothing remains if it rolls back. No
    ``NOTIFY`` goes with it: PostgreSQL serializes the commits of every transaction that notifies, which would
    make all writers queue behind each other; the relay polls, and a writer wakes its own worker's relay.

    ``unconfirmed`` is for the events of a write whose outcome is unknown (it failed, but may have landed): a
    JSON-ready check that the relay hands to its ``confirm`` function once the write can no longer be in flight;
    the events are published if the check holds and dropped if it does not.
    """
    if not events:
        return
    now = datetime.now(timezone.utc)
    check = orjson.dumps(unconfirmed) if unconfirmed is not None else None
    rows = [{"payload": event_to_bytes(event), "created_at": now, "unconfirmed": check} for event in events]
    # One row (the common case) as a plain execute: SQLAlchemy's executemany path costs about 0.1 ms more.
    connection.execute(_INSERT, rows[0] if len(rows) == 1 else rows)
