"""The service's Prometheus metrics, and the /metrics exposition.

Any module may import a metric from here and count (``COALESCED_READS.inc()``, ``RATE_LIMITED.inc()``).
Under gunicorn every worker writes its samples to files in ``PROMETHEUS_MULTIPROC_DIR`` (config/gunicorn.py
sets it before the workers start), and whichever worker answers a scrape sums them all. prometheus_client picks
its file-backed values when it is first imported, so that variable must be set before then; it is, because
workers are forked from a master that has already set it.
"""
from __future__ import annotations

import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

#: Request latencies from sub-millisecond (a cached read on SQLite) to the worker timeout.
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Store calls are shorter than requests; below 0.5 ms is an in-process SQLite read.
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

HTTP_REQUESTS = Counter(
    "chatstore_http_requests", "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "chatstore_http_request_duration_seconds", "Time to build the response, by route template, method and status.",
    ["route", "method", "status"], buckets=HTTP_BUCKETS,
)
HTTP_REQUESTS_IN_PROGRESS = Gauge(
    "chatstore_http_requests_in_progress", "Requests being handled right now, over all live workers.",
    multiprocess_mode="livesum",
)
STORE_CALLS = Counter(
    "chatstore_message_store_calls", "Message store calls, by backend, operation and outcome (ok, unavailable, error).",
    ["backend", "operation", "outcome"],
)
STORE_CALL_DURATION = Histogram(
    "chatstore_message_store_call_duration_seconds", "Message store call latency, by backend, operation and outcome.",
    ["backend", "operation", "outcome"], buckets=STORE_BUCKETS,
)
DB_POOL_IN_USE = Gauge(
    "chatstore_db_pool_connections_in_use", "Database connections checked out of the pools of all live workers.",
    multiprocess_mode="livesum",
)
DB_POOL_WAITING = Gauge(
    "chatstore_db_pool_checkouts_waiting",
    "Requests waiting for a database connection (a free one, or a new one to connect), over all live workers.",
    multiprocess_mode="livesum",
)
COALESCED_READS = Counter(
    "chatstore_coalesced_reads", "Reads answered by joining an identical read already in flight in the worker.",
)
RATE_LIMITED = Counter(
    "chatstore_rate_limited", "Requests refused with 429 by a rate limit.",
)
HUB_BLOCKED = Counter(
    "chatstore_gevent_hub_blocked", "Times gevent's monitor thread found the hub blocked beyond the threshold.",
)
EVENTS_PUBLISHED = Counter(
    "chatstore_events_published", "Events the outbox relay published to the event bus (republished ones count again).",
)
EVENT_PUBLISH_FAILURES = Counter(
    "chatstore_event_publish_failures", "Relay passes whose publish to the event bus failed (the events stay queued).",
)
# Only the leading relay measures these; the others report 0, so the maximum over live workers is its value.
EVENT_OUTBOX_DEPTH = Gauge(
    "chatstore_event_outbox_depth", "Committed events waiting in the outbox for the relay.",
    multiprocess_mode="livemax",
)
EVENT_RELAY_LAG = Gauge(
    "chatstore_event_relay_lag_seconds", "Age of the oldest event waiting in the outbox (0 when it is empty).",
    multiprocess_mode="livemax",
)
EVENT_GROUP_LAG = Gauge(
    "chatstore_event_group_lag", "Events on the bus not yet delivered to a consumer group, by group.",
    ["group"], multiprocess_mode="livemax",
)
GATEWAY_SESSIONS = Gauge(
    "chatstore_gateway_sessions", "Gateway WebSocket connections open, over all live workers.",
    multiprocess_mode="livesum",
)
GATEWAY_DISPATCHES = Counter(
    "chatstore_gateway_dispatches", "Dispatches (op 0) queued to gateway sessions, by event type.", ["type"],
)
GATEWAY_FANOUT_LATENCY = Histogram(
    "chatstore_gateway_fanout_latency_seconds",
    "From an event's creation by its writer to its dispatch being queued to the sessions that receive it.",
    buckets=HTTP_BUCKETS,
)
GATEWAY_RESUMES = Counter(
    "chatstore_gateway_resumes", "RESUME attempts, by outcome (ok, invalid, busy).", ["outcome"],
)
GATEWAY_CLOSES = Counter(
    "chatstore_gateway_closes", "Gateway connections closed by the server, by close code.", ["code"],
)
SEARCH_INDEXED = Counter(
    "chatstore_search_indexed",
    "Events the search indexer applied to the search engine (redelivered ones count again).",
)
SEARCH_INDEX_FAILURES = Counter(
    "chatstore_search_index_failures", "Search indexer batches the engine refused or failed (the events are retried).",
)
SEARCH_INDEX_LAG = Histogram(
    "chatstore_search_index_lag_seconds", "From an event's write (its id's time) to its being searchable.",
    buckets=(0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0),
)
RESIDENT_MEMORY = Gauge(
    # liveall keeps one series per live worker (labelled by pid), so a leaking worker stands out; the default
    # process collector cannot work here, since it only describes the process that answers the scrape.
    "chatstore_process_resident_memory_bytes", "Resident memory of each live worker process.",
    multiprocess_mode="liveall",
)

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
#: Resident memory changes slowly; reading it on every request would cost a file read per request.
_MEMORY_SAMPLE_INTERVAL = 5.0
_memory_sampled_at = float("-inf")


def sample_resident_memory(force: bool = False) -> None:
    """Record this process's resident memory, at most once per interval unless ``force``."""
    global _memory_sampled_at
    now = time.monotonic()
    if not force and now - _memory_sampled_at < _MEMORY_SAMPLE_INTERVAL:
        return
    _memory_sampled_at = now
    try:
        with open("/proc/self/statm", "rb") as statm:
            resident_pages = int(statm.read().split()[1])
    except OSError:
        return  # not Linux: no /proc, and no honest substitute (getrusage only knows the peak)
    RESIDENT_MEMORY.set(resident_pages * _PAGE_SIZE)


def is_multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def metrics_view():
    """GET /metrics: every live and dead worker's samples in multiprocess mode, else this process's."""
    from flask import Response

    sample_resident_memory(force=True)
    if is_multiprocess():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
