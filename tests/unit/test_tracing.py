"""Traces in process: the settings, the trace context carried by events, log lines, and gevent's greenlets.

These tests use a tracer provider of their own, never the process-wide one, so that the rest of the suite keeps
running with tracing off; the served path (gunicorn exporting to a collector) is tests/e2e/test_tracing.py.
"""
from __future__ import annotations

import contextvars
import logging

import gevent
import gevent.event
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app.events.base import Event, event_from_bytes, event_to_bytes
from app.observability.logs import RequestIdFilter
from app.observability.tracing import (
    RequestSpan,
    consuming,
    context_of,
    current_trace_ids,
    current_traceparent,
    first_sampled,
    links_to,
    tracing_enabled,
)
from config import SettingsError, load_settings

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


@pytest.fixture
def recorded():
    """A tracer of a provider of its own, and the spans it finished."""
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("test"), exporter
    provider.shutdown()


@pytest.fixture
def tracer(recorded):
    return recorded[0]


def test_tracing_is_off_unless_an_endpoint_is_set():
    assert not tracing_enabled(load_settings({}))
    on = load_settings({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_SAMPLER_ARG": "0.01",
                        "OTEL_SERVICE_NAME": "chat"})
    assert tracing_enabled(on)
    assert (on.otel_traces_sampler_arg, on.otel_service_name) == (0.01, "chat")


@pytest.mark.parametrize(("name", "value"), [("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
                                             ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
                                             ("OTEL_TRACES_SAMPLER_ARG", "nan"),
                                             ("OTEL_TRACES_SAMPLER_ARG", "often")])
def test_bad_trace_settings_are_refused(name, value):
    with pytest.raises(SettingsError) as error:
        load_settings({name: value})
    assert error.value.problems[0].startswith(f"{name}=")


def test_an_event_carries_its_traceparent_through_its_stored_form():
    event = Event(id=1, type="MESSAGE_CREATE", guild_id=2, channel_id=3, data={"x": 1}, traceparent=TRACEPARENT)
    assert event_from_bytes(event_to_bytes(event)).traceparent == TRACEPARENT


def test_events_stored_before_traces_read_back_without_one():
    stored_by_an_older_release = b'{"id":1,"t":"MESSAGE_CREATE","g":2,"c":3,"d":{},"b":false}'
    event = event_from_bytes(stored_by_an_older_release)
    assert (event.id, event.traceparent) == (1, None)
    # And an event without one is stored exactly as an older release stored it, so older readers read it.
    assert event_to_bytes(event) == stored_by_an_older_release


def test_the_current_traceparent_names_the_current_span(tracer):
    assert current_traceparent() is None
    with tracer.start_as_current_span("request") as span:
        context = span.get_span_context()
        version, trace_id, parent_id, flags = current_traceparent().split("-")
        assert (version, trace_id, parent_id) == ("00", f"{context.trace_id:032x}", f"{context.span_id:016x}")
        assert int(flags, 16) & 1  # sampled
        assert current_trace_ids() == (f"{context.trace_id:032x}", f"{context.span_id:016x}")
    assert current_trace_ids() is None


def test_a_consumer_continues_the_trace_of_the_write():
    with consuming("chatstore.test.consume", TRACEPARENT) as span:
        context = span.get_span_context()
        assert format(context.trace_id, "032x") == TRACE_ID
    with consuming("chatstore.test.consume", "00-garbage") as span:
        assert format(span.get_span_context().trace_id, "032x") != TRACE_ID


@pytest.mark.parametrize("traceparent", [None, "", "00-xyz", f"00-{'0' * 32}-{PARENT_ID}-01"])
def test_absent_or_malformed_traceparents_start_no_trace(traceparent):
    assert context_of(traceparent) is None


def test_a_batch_links_to_each_traced_event():
    other = f"00-{'1' * 32}-{'2' * 16}-01"
    links = links_to([TRACEPARENT, None, "junk", other])
    assert [format(link.context.trace_id, "032x") for link in links] == [TRACE_ID, "1" * 32]


def test_log_lines_carry_the_trace_and_span_ids(tracer):
    record = logging.LogRecord("chatstore.test", logging.INFO, __file__, 1, "hello", None, None)
    with tracer.start_as_current_span("request") as span:
        RequestIdFilter().filter(record)
    context = span.get_span_context()
    assert (record.trace_id, record.span_id) == (f"{context.trace_id:032x}", f"{context.span_id:016x}")
    untraced = logging.LogRecord("chatstore.test", logging.INFO, __file__, 1, "hello", None, None)
    RequestIdFilter().filter(untraced)
    assert not hasattr(untraced, "trace_id")


def test_concurrent_greenlets_keep_their_own_spans(tracer):
    """Two requests served by one worker, interleaved at every switch, never see each other's span."""
    both_started = gevent.event.Event()
    started = []
    seen = {}

    def request(name: str) -> None:
        with tracer.start_as_current_span(name) as span:
            started.append(name)
            if len(started) == 2:
                both_started.set()
            both_started.wait(timeout=10)  # the other greenlet runs inside its own span meanwhile
            gevent.sleep(0)
            seen[name] = (current_traceparent(), span.get_span_context().trace_id)

    gevent.joinall([gevent.spawn(request, "first"), gevent.spawn(request, "second")], raise_error=True)
    assert both_started.is_set()
    assert seen["first"][1] != seen["second"][1]
    for traceparent, trace_id in seen.values():
        assert traceparent.split("-")[1] == f"{trace_id:032x}"


def test_a_greenlet_spawned_with_the_requests_context_continues_its_trace(tracer):
    """gevent gives a new greenlet an empty context: work spawned for a request (as /readyz's checks are) joins
    the request's trace when spawned through ``copy_context().run``, and only then."""
    with tracer.start_as_current_span("request") as span:
        trace_id = span.get_span_context().trace_id
        carried = gevent.spawn(contextvars.copy_context().run, current_trace_ids)
        bare = gevent.spawn(current_trace_ids)
        gevent.joinall([carried, bare], raise_error=True)
    assert carried.value[0] == f"{trace_id:032x}"
    assert bare.value is None


def test_a_batch_joins_the_first_sampled_trace_among_its_events():
    unsampled = f"00-{'1' * 32}-{'2' * 16}-00"
    assert first_sampled([None, unsampled]) is None
    context = first_sampled([unsampled, "junk", TRACEPARENT])
    assert format(trace.get_current_span(context).get_span_context().trace_id, "032x") == TRACE_ID


def test_a_request_span_continues_the_callers_trace_and_is_current_until_it_ends(recorded):
    tracer, exporter = recorded
    route = "/api/v10/channels/<channel_id>/messages"
    span = RequestSpan("POST", route, {"traceparent": TRACEPARENT}, tracer=tracer)
    assert current_trace_ids()[0] == TRACE_ID
    span.answered(200)
    span.end(None)
    assert current_trace_ids() is None
    [finished] = exporter.get_finished_spans()
    assert finished.name == f"POST {route}" and finished.parent.span_id == int(PARENT_ID, 16)
    assert finished.attributes["http.route"] == route and finished.attributes["http.response.status_code"] == 200
    assert finished.status.is_ok


def test_a_request_span_marks_server_errors_and_exceptions(recorded):
    tracer, exporter = recorded
    failed = RequestSpan("GET", "/api/v10/users/@me", {}, tracer=tracer)
    failed.answered(503)
    failed.end(None)
    crashed = RequestSpan("GET", "/api/v10/users/@me", {}, tracer=tracer)
    crashed.end(RuntimeError("boom"))
    first, second = exporter.get_finished_spans()
    assert not first.status.is_ok and not second.status.is_ok
    assert [event.name for event in second.events] == ["exception"]
    assert first.parent is None, "no traceparent: a new trace"
