"""The outbox: events written in the writer's own transaction, so an event exists iff its write committed.

The writer calls :func:`append` on the connection of the transaction that writes the message, after locking the
channel's row; the relay (app.events.relay) later moves the rows, in id order, onto the bus. Because the
channel's row lock is held until commit, the outbox ids of one channel's events are in commit order.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timezone

import orjson
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from sqlalchemy.engine import Connection

from app.events.base import Event, event_to_bytes
from app.observability.tracing import TRACER, current_traceparent
from models.events import event_outbox

__all__ = ["append", "event_outbox", "outbox_rows", "recording"]

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
    with recording(len(events)):
        rows = outbox_rows(events, unconfirmed)
        # One row (the common case) as a plain execute: SQLAlchemy's executemany path costs about 0.1 ms more.
        connection.execute(_INSERT, rows[0] if len(rows) == 1 else rows)


def recording(count: int) -> AbstractContextManager:
    """Inside a sampled trace, the producer's span of the events' publication, around building their rows (each
    event then carries its context, so a consumer's span is its child) and inserting them; else nothing."""
    if trace.get_current_span().is_recording():
        return TRACER.start_as_current_span("chatstore.events.record", kind=SpanKind.PRODUCER,
                                            attributes={"messaging.batch.message_count": count})
    return nullcontext()


def outbox_rows(events: Sequence[Event], unconfirmed: dict | None = None) -> list[dict]:
    """The rows of ``events`` for the outbox's insert (``payload``, ``created_at``, ``unconfirmed``), for a caller
    that sends the insert itself (with other statements, in one round trip), inside :func:`recording`. Inside
    an unsampled trace, the events carry the request's context, so that their consumers make the same decision.
    Events that already carry one (recorded again) keep theirs."""
    now = datetime.now(timezone.utc)
    check = orjson.dumps(unconfirmed) if unconfirmed is not None else None
    return [{"payload": event_to_bytes(event), "created_at": now, "unconfirmed": check}
            for event in _traced(events)]


def _traced(events: Sequence[Event]) -> Sequence[Event]:
    traceparent = current_traceparent()
    if traceparent is None:
        return events
    return [event if event.traceparent else dataclasses.replace(event, traceparent=traceparent) for event in events]
