"""Per request: the request id, the access log line and the request metrics."""
from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, request

from app.observability.logs import REQUEST_ID, request_id_from
from app.observability.metrics import (
    HTTP_REQUEST_DURATION,
    HTTP_REQUESTS,
    HTTP_REQUESTS_IN_PROGRESS,
    sample_resident_memory,
)
from app.observability.tracing import RequestSpan

REQUEST_ID_HEADER = "X-Request-ID"
#: The route label of requests that matched no rule; raw paths would make the label set unbounded.
UNMATCHED_ROUTE = "<unmatched>"
#: Probes and scrapes: every few seconds from every orchestrator and Prometheus, and worth no trace.
UNTRACED_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})

access_log = logging.getLogger("chatstore.access")


def register_request_hooks(app: Flask, *, metrics_enabled: bool, traced: bool = False) -> None:
    """Time, count and log every request, give it a request id and, when ``traced``, a span.

    The hooks go first in Flask's lists so that they wrap everything else: the start runs before any other
    ``before_request`` (authentication included, so its failures are counted), the finish after every other
    ``after_request``, and the request id is reset after every other teardown has logged.
    """

    def start() -> None:
        g.request_started = time.perf_counter()
        g.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        g.request_id_reset = REQUEST_ID.set(g.request_id)
        if traced:
            route = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
            if route not in UNTRACED_ROUTES:
                g.request_span = RequestSpan(request.method, route, request.headers)
        if metrics_enabled:
            HTTP_REQUESTS_IN_PROGRESS.inc()
            g.counted_in_progress = True

    def finish(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = g.request_id
        seconds = time.perf_counter() - g.request_started
        # The template, never the path: paths carry ids (unbounded labels) and, for some Discord routes
        # (webhooks, interactions), secrets.
        route = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
        status = response.status_code
        if metrics_enabled:
            labels = (route, request.method, str(status))
            HTTP_REQUESTS.labels(*labels).inc()
            HTTP_REQUEST_DURATION.labels(*labels).observe(seconds)
            sample_resident_memory()
        span = g.get("request_span")
        if span is not None:
            span.answered(status)
        user = g.get("user")
        access_log.info(
            "%s %s %s", request.method, route, status,
            extra={"route": route, "method": request.method, "status": status,
                   "duration_ms": round(seconds * 1000, 2), "user_id": str(user.id) if user is not None else None},
        )
        return response

    def end(error: BaseException | None) -> None:
        if g.pop("counted_in_progress", False):
            HTTP_REQUESTS_IN_PROGRESS.dec()
        span = g.pop("request_span", None)
        if span is not None:
            span.end(error)
        reset = g.pop("request_id_reset", None)
        if reset is not None:
            REQUEST_ID.reset(reset)

    app.before_request_funcs.setdefault(None, []).insert(0, start)
    app.after_request_funcs.setdefault(None, []).insert(0, finish)
    app.teardown_request_funcs.setdefault(None, []).insert(0, end)
