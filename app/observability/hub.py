"""The watch on the gevent hub: every report of gevent's monitor thread becomes a log line and a metric.

config/gunicorn.py starts the monitor thread in each worker once the app is loaded (``HUB_BLOCKING_THRESHOLD_MS``).
The monitor notifies from its own OS thread while the hub is still stuck, so the stack it captured is the one
doing the blocking, and the line is written even if the hub never comes back. That thread cannot read the
blocked greenlet's context, so the line carries no request id; the stack names the view.
"""
from __future__ import annotations

import logging

import gevent.events
from gevent.events import IEventLoopBlocked

from app.observability.metrics import HUB_BLOCKED

log = logging.getLogger("chatstore.hub")


def _blocked_stack(report: list[str]) -> str:
    """The report up to its "Info:" part: the blocked greenlet and its stack. The rest lists every thread and
    greenlet with its greenlet-local values, which can hold anything a request put there, secrets included."""
    end = report.index("Info:") if "Info:" in report else len(report)
    return "\n".join(line.strip("\n") for line in report[:end] if line.strip("=\n"))


def on_event_loop_blocked(event) -> None:
    if not IEventLoopBlocked.providedBy(event):
        return
    HUB_BLOCKED.inc()
    log.warning(
        "gevent hub blocked for more than %d ms", event.blocking_time * 1000,
        extra={"blocked_threshold_ms": round(event.blocking_time * 1000), "stack": _blocked_stack(event.info)},
    )


def watch_hub() -> None:
    """Subscribe to gevent's events (once per process, however many apps are created)."""
    if on_event_loop_blocked not in gevent.events.subscribers:
        gevent.events.subscribers.append(on_event_loop_blocked)
