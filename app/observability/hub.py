"""The watch on the gevent hub: every report of gevent's monitor thread becomes a log line and a metric.

config/gunicorn.py starts the monitor thread in each worker once the app is loaded (``HUB_BLOCKING_THRESHOLD_MS``).
The monitor notifies from its own OS thread while the hub is still stuck, so the stack it captured is the one
doing the blocking. That thread must not touch logging or the metrics: their locks are gevent locks once
patched, and taking one from a foreign OS thread makes gevent start a hub (and another monitor) there or
deadlock against the worker's greenlets, which hung workers. So the thread only queues the report; the
worker logs and counts it when the request that was running ends, or, with no request running, when the
thread wakes the worker's loop through an ``async_`` watcher (gevent's thread-safe wake-up). A hub blocked for
good is not logged here; gunicorn's worker timeout reports that one.
The line carries no request id (the monitor cannot read the blocked greenlet's context); the stack names the view.
"""
from __future__ import annotations

import collections
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


_reports: collections.deque = collections.deque(maxlen=100)
_wakeup = None


def on_event_loop_blocked(event) -> None:
    """Runs in the monitor's OS thread: queue the report and wake the worker's loop, nothing more."""
    if not IEventLoopBlocked.providedBy(event) or _wakeup is None:
        return
    _reports.append((event.blocking_time, _blocked_stack(event.info)))
    _wakeup.send()


def report_blocks() -> None:
    """Log and count the queued reports; runs in the worker's own thread."""
    while _reports:
        blocking_time, stack = _reports.popleft()
        HUB_BLOCKED.inc()
        log.warning("gevent hub blocked for more than %d ms", blocking_time * 1000,
                    extra={"blocked_threshold_ms": round(blocking_time * 1000), "stack": stack})


def watch_hub() -> None:
    """Subscribe to gevent's events (once per process, however many apps are created); call from the thread
    whose hub serves requests."""
    global _wakeup
    if _wakeup is None:
        _wakeup = gevent.get_hub().loop.async_()
        _wakeup.ref = False  # the watch alone must not keep an idle loop running
        _wakeup.start(lambda: gevent.spawn(report_blocks))
    if on_event_loop_blocked not in gevent.events.subscribers:
        gevent.events.subscribers.append(on_event_loop_blocked)
