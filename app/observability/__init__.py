"""Operability: Prometheus metrics, JSON logs with request ids, health endpoints and the gevent hub watch.

``init_app(app, settings)`` wires them into an application. Metric objects live in ``app.observability.metrics``
so that any module can count; app/extensions.py instruments the message store and the database pool through
``app.observability.instrumentation``.
"""
from __future__ import annotations


def init_app(app, settings) -> None:
    # Imported here so that importing the package (as app/extensions.py does) pulls in neither Flask nor the API.
    from app.observability.access import register_request_hooks
    from app.observability.health import health
    from app.observability.hub import report_blocks, watch_hub
    from app.observability.logs import configure_logging
    from app.observability.metrics import metrics_view, sample_resident_memory
    from app.observability.tracing import configure_tracing

    configure_logging(settings.log_level)
    register_request_hooks(app, metrics_enabled=settings.metrics_enabled, traced=configure_tracing(settings))
    app.register_blueprint(health)
    watch_hub()
    # Reports queued while a request blocked the hub are written as that request ends (the async wake-up in
    # app.observability.hub covers a worker with no requests to end).
    app.teardown_request(lambda _error: report_blocks())
    if settings.metrics_enabled:
        app.add_url_rule("/metrics", endpoint="metrics", view_func=metrics_view)
        sample_resident_memory(force=True)  # a worker that has served nothing yet still shows its size
