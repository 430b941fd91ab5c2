"""The watch on the gevent hub: every report of gevent's monitor thread becomes a log line and a metric.

config/gunicorn.py turns the monitor thread on (``HUB_BLOCKING_THRESHOLD_MS``) before the hub first runs. The
monitor notifies from its own OS thread while the hub is still stuck, so the stack it captured is the one doing
the blocking, and the line is written even if the hub never comes back.
"""
from __future__ import annotations

import logging

import gevent.events
from gevent.events import IEventLoopBlocked

from app.observability.logs import REQUEST_ID
from app.observability.metrics import HUB_BLOCKED

log = logging.getLogger("chatstore.hub")


def _request_id_of(greenlet) -> str | None:
    """The request id of the greenlet that blocked, read from its own context."""
    try:
        context = greenlet.gr_context
    except (AttributeError, ValueError):  # not a greenlet, or one whose context cannot be read from here
        return None
    return context.get(REQUEST_ID) if context is not None else None


def on_event_loop_blocked(event) -> None:
    if not IEventLoopBlocked.providedBy(event):
        return
    HUB_BLOCKED.inc()
    log.warning(
        "gevent hub blocked for more than %d ms", event.blocking_time * 1000,
        extra={"blocked_threshold_ms": round(event.blocking_time * 1000), "stack": "\n".join(event.info),
               "request_id": _request_id_of(event.greenlet)},
    )


def watch_hub() -> None:
    """Subscribe to gevent's events (once per process, however many apps are created)."""
    if on_event_loop_blocked not in gevent.events.subscribers:
        gevent.events.subscribers.append(on_event_loop_blocked)
