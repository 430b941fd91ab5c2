"""/healthz and /readyz, outside the API (which authenticates everything) so that probes need no token.

/healthz says the worker can answer at all and touches nothing. /readyz asks the database, the message store,
the event bus and the blob store at the same time and gives each the readiness timeout: a worker whose pool is
exhausted or whose store or bus is down is not ready, and the probe learns it within that time instead of hanging
with the requests it protects.
"""
from __future__ import annotations

import logging
from contextvars import copy_context

import gevent
from flask import Blueprint, current_app
from sqlalchemy import text

from app.api.json import json_response

health = Blueprint("health", __name__)
log = logging.getLogger(__name__)


def _database_answers(resources) -> None:
    with resources.engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _message_store_answers(resources) -> None:
    resources.message_store.ping()


def _event_bus_answers(resources) -> None:
    resources.event_bus.ping()


def _blob_store_answers(resources) -> None:
    resources.blob_store.ping()


CHECKS = {"database": _database_answers, "message_store": _message_store_answers, "event_bus": _event_bus_answers,
          "blob_store": _blob_store_answers}


def _run_check(check, resources, timeout: float) -> str:
    try:
        with gevent.Timeout(timeout):
            check(resources)
    except gevent.Timeout:
        return "timeout"
    except Exception as exc:  # any failure means not ready; the probe says which check failed, the log says why
        log.warning("readiness check %s failed: %s: %s", check.__name__, type(exc).__name__, exc)
        return "unavailable"
    return "ok"


@health.get("/healthz")
def healthz():
    return json_response({"status": "ok"})


@health.get("/readyz")
def readyz():
    resources = current_app.extensions["chatstore"]
    timeout = resources.settings.readiness_timeout
    # Each check runs in a copy of this request's context, so its log lines carry the request id.
    running = {name: gevent.spawn(copy_context().run, _run_check, check, resources, timeout)
               for name, check in CHECKS.items()
               if name != "event_bus" or resources.settings.events_enabled}
    gevent.joinall(running.values())
    checks = {name: greenlet.value for name, greenlet in running.items()}
    ready = all(outcome == "ok" for outcome in checks.values())
    return json_response({"status": "ok" if ready else "unavailable", "checks": checks}, 200 if ready else 503)
