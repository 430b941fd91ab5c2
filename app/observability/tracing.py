"""Distributed traces with OpenTelemetry: off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` names a collector.

``configure_tracing`` installs the SDK's tracer provider once per process (each gunicorn worker, each CLI run),
exporting over OTLP/HTTP with a batching processor: spans are queued in the request and sent by the processor's
own thread, which gevent's patch turns into a greenlet, so an export is socket I/O on the hub like any other.
OTLP/gRPC is not offered: grpcio's C core does its own I/O on native threads that gevent cannot make cooperative.

Everything else uses the API's ``TRACER``, a no-op until a provider is installed, so code paths that trace cost
a function call when tracing is off. The request and statement spans are written here rather than taken from
OpenTelemetry's Flask and SQLAlchemy instrumentations: those compute every attribute (the request's URL, the
statement's parsed verb and connection details) before knowing whether the span is sampled, which cost 1.2 to 1.5
times the CPU per request at a 1% sample rate; here an unsampled request costs its span's creation and little else
(docs/measurements.md#traces).

The current span lives in a context variable; gevent gives every greenlet its own context, so concurrent requests
never see each other's span, and a greenlet spawned for a request must be given the request's context
(``gevent.spawn(contextvars.copy_context().run, ...)``) to continue its trace.

An event carries the W3C ``traceparent`` of the request that wrote it (:func:`current_traceparent`); a consumer
continues that trace with :func:`consuming`.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACER = trace.get_tracer("chatstore")
_PROPAGATOR = TraceContextTextMapPropagator()
_configure_lock = threading.Lock()
_configured = False


def tracing_enabled(settings) -> bool:
    return bool(settings.otel_exporter_otlp_endpoint)


def configure_tracing(settings, exporter=None) -> bool:
    """Install the tracer provider when tracing is on; return whether it is. Once per process: later calls (a
    second app in one process) keep the first provider, as OpenTelemetry's global provider cannot be replaced.

    ``exporter`` replaces the OTLP exporter (tests and the benchmark pass an in-memory one).
    """
    global _configured
    if not tracing_enabled(settings) and exporter is None:
        return False
    with _configure_lock:
        if _configured:
            return True
        # Imported here: the SDK and the exporter are not loaded at all while tracing is off.
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            # The base URL, as OpenTelemetry's variable means it; the exporter takes the full traces URL.
            exporter = OTLPSpanExporter(endpoint=settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces")
        # Parent-based: a request whose caller sampled its trace is sampled here too, so traces stay whole.
        sampler = ParentBased(TraceIdRatioBased(settings.otel_traces_sampler_arg))
        provider = TracerProvider(resource=Resource.create({"service.name": settings.otel_service_name}),
                                  sampler=sampler)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        _configured = True
    return True


class RequestSpan:
    """The server span of one HTTP request, current from :meth:`start` until :meth:`end`.

    It continues the caller's W3C ``traceparent`` (its sampling decision included); named by method and route
    template, never the path, like the access log and the metrics.
    """

    __slots__ = ("span", "_token")

    def __init__(self, method: str, route: str, headers, tracer: trace.Tracer = TRACER) -> None:
        parent = _PROPAGATOR.extract(headers)
        self.span = tracer.start_span(f"{method} {route}", context=parent, kind=SpanKind.SERVER)
        if self.span.is_recording():
            self.span.set_attributes({"http.request.method": method, "http.route": route})
        self._token = context_api.attach(trace.set_span_in_context(self.span))

    def answered(self, status: int) -> None:
        if self.span.is_recording():
            self.span.set_attribute("http.response.status_code", status)
            if status >= 500:
                self.span.set_status(Status(StatusCode.ERROR))

    def end(self, error: BaseException | None) -> None:
        if error is not None and self.span.is_recording():
            self.span.record_exception(error)
            self.span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        self.span.end()
        context_api.detach(self._token)


def trace_statements(engine) -> None:
    """A client span per SQL statement run inside a sampled span: its text (with placeholders), never its
    parameters. Statements outside any span (the relay's polls, a CLI's work) start no trace of their own."""
    from sqlalchemy import event

    system = engine.dialect.name

    @event.listens_for(engine, "before_cursor_execute")
    def start(connection, cursor, statement, parameters, context, executemany):
        if context is not None and trace.get_current_span().is_recording():
            context.chatstore_span = TRACER.start_span(
                statement.split(None, 1)[0] if statement else system, kind=SpanKind.CLIENT,
                attributes={"db.system": system, "db.query.text": statement})

    @event.listens_for(engine, "after_cursor_execute")
    def finish(connection, cursor, statement, parameters, context, executemany):
        span = getattr(context, "chatstore_span", None)
        if span is not None:
            span.end()
            context.chatstore_span = None

    @event.listens_for(engine, "handle_error")
    def fail(exception_context):
        span = getattr(exception_context.execution_context, "chatstore_span", None)
        if span is not None:
            span.record_exception(exception_context.original_exception)
            span.set_status(Status(StatusCode.ERROR, type(exception_context.original_exception).__name__))
            span.end()
            exception_context.execution_context.chatstore_span = None


def shutdown_tracing() -> None:
    """Export what is queued and stop the exporter (worker exit)."""
    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if shutdown is not None:
        shutdown()


def current_trace_ids() -> tuple[str, str] | None:
    """The current trace and span ids as hex, for log lines; None outside any trace."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, to carry inside an event; None outside any trace."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def context_of(traceparent: str | None) -> Context | None:
    """The trace context a ``traceparent`` names; None when it is absent or malformed (a new trace begins)."""
    if not traceparent:
        return None
    context = _PROPAGATOR.extract({"traceparent": traceparent})
    return context if trace.get_current_span(context).get_span_context().is_valid else None


@contextlib.contextmanager
def consuming(name: str, traceparent: str | None, **attributes) -> Iterator[Span]:
    """A consumer's span for handling one event, a child of the request that wrote it (a root span for events
    written outside any trace, or stored before events carried one)."""
    with TRACER.start_as_current_span(name, context=context_of(traceparent), kind=SpanKind.CONSUMER,
                                      attributes=attributes) as span:
        yield span


def first_sampled(traceparents: Sequence[str | None]) -> Context | None:
    """The parent of a span that handles many events at once: the first of their traces that was sampled, so
    that the span is kept whenever one of the writes it carries was (as a root it would be sampled on its own,
    at the ratio, and mostly dropped)."""
    for traceparent in traceparents:
        context = context_of(traceparent)
        if context is not None and trace.get_current_span(context).get_span_context().trace_flags.sampled:
            return context
    return None


def links_to(traceparents: Sequence[str | None]) -> list[Link]:
    """Links from a span that handles many events at once (the relay's publish) to the traces that wrote them."""
    links = []
    for traceparent in traceparents:
        context = context_of(traceparent)
        if context is not None:
            links.append(Link(trace.get_current_span(context).get_span_context()))
    return links
