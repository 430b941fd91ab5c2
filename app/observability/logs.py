"""JSON log lines on stderr, each carrying the id of the request it was written for.

The request id lives in a context variable: gevent gives every greenlet its own context, so concurrent requests
in one worker never see each other's id. Log lines name routes by template and never include headers or bodies,
so tokens and message content stay out of the logs.
"""
from __future__ import annotations

import logging
import re
import sys
import uuid
from contextvars import ContextVar

from pythonjsonlogger.orjson import OrjsonFormatter

from app.observability.tracing import current_trace_ids

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
#: Ids from clients or proxies are kept when they are short and cannot break a log line or a header.
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
LOG_FIELDS = ("levelname", "name", "process", "message")
RENAMED_FIELDS = {"levelname": "level", "name": "logger", "process": "pid"}


def request_id_from(header: str | None) -> str:
    """The client's id when it is acceptable, else a new one."""
    if header and VALID_REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current request's id (unless the caller already gave one) and, inside a
    trace, its trace and span ids, the keys a log store joins with the traces."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        ids = current_trace_ids()
        if ids is not None:
            record.trace_id, record.span_id = ids
        return True


class _ServiceHandler(logging.StreamHandler):
    """The root handler this module installs; its own class so a second configure replaces it."""


def json_formatter() -> OrjsonFormatter:
    # timestamp: the record's time in UTC, ISO 8601 with microseconds. orjson, as for the API's bodies: an access
    # line per request is a measurable share of a cheap request's time with the standard json module.
    return OrjsonFormatter(list(LOG_FIELDS), rename_fields=RENAMED_FIELDS, timestamp="time")


def configure_logging(level: str) -> logging.Handler:
    """Send every log record to stderr as one JSON object per line, at ``level`` and above."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _ServiceHandler)]:
        root.removeHandler(handler)
    handler = _ServiceHandler(sys.stderr)
    handler.setFormatter(json_formatter())
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries that narrate routine work at INFO: alembic (its plugin setup, on every CLI command), and the
    # instrumented pool, whose logger SQLAlchemy names after its class and so does not quiet with its own.
    for chatty in ("alembic", "app.observability.instrumentation"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
    return handler
