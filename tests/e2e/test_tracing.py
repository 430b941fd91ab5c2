"""End to end: real gunicorn exporting its traces over OTLP/HTTP to a collector in this process.

A message is created under a caller's W3C ``traceparent``; the collector must then hold, in the caller's trace,
the request's server span named by its route template, the message store's span, SQL statement spans and the
event's producer span; the stored event must carry that producer span's context, the relay's publish span must
link to it, and the server's log lines must carry the trace id.
"""
from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import gevent
import pytest
from gevent.pywsgi import WSGIServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from app.events import build_bus
from app.extensions import Resources
from tests.support.databases import migrated_database
from tests.support.factories import ALL, Factory
from tests.support.http import JsonClient
from tests.support.server import free_port, gunicorn_server, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"
#: The batching processor sends every 5 s; the margin is for a loaded machine.
EXPORT_SECONDS = 30


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict
    links: list[tuple[str, str]]


class Collector:
    """An OTLP/HTTP trace receiver: decodes every export request into spans."""

    def __init__(self):
        self.spans: list[ReceivedSpan] = []
        self.port = free_port()
        self.server = WSGIServer(("127.0.0.1", self.port), self.receive, log=None)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def receive(self, environ, start_response):
        body = environ["wsgi.input"].read()
        if environ.get("HTTP_CONTENT_ENCODING") == "gzip":
            body = gzip.decompress(body)
        if environ["PATH_INFO"] != "/v1/traces":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"traces only"]
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(ReceivedSpan(
                        name=span.name, trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(), kind=span.kind,
                        attributes={a.key: _value(a.value) for a in span.attributes},
                        links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links]))
        start_response("200 OK", [("Content-Type", "application/x-protobuf")])
        return [b""]

    def in_trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [span for span in self.spans if span.trace_id == trace_id]


def _value(value):
    return getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None


@contextmanager
def collector() -> Iterator[Collector]:
    receiver = Collector()
    receiver.server.start()
    try:
        yield receiver
    finally:
        receiver.server.stop(timeout=5)


def test_a_request_is_traced_from_the_caller_to_the_event(tmp_path):
    with migrated_database("sqlite", tmp_path) as settings, collector() as otlp:
        resources = Resources(settings)
        try:
            make = Factory(resources)
            bot = make.actor("tracer")
            guild_id, channel_id = make.guild(bot, everyone=int(ALL))
            environment = {"DATABASE_URL": settings.database_url, "WEB_WORKERS": "1",
                           "RATE_LIMIT_ENABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
                           "OTEL_TRACES_SAMPLER_ARG": "0"}
            with gunicorn_server(environment) as server:
                api = JsonClient(server.url, bot.token)
                # Sampling at 0 for new traces: this one is traced because its caller sampled it.
                status, headers, message = api.exchange(
                    "POST", f"/channels/{channel_id}/messages", {"content": "traced"},
                    headers={"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"})
                assert status == 200, message
                untraced_status, _ = api.get(f"/channels/{channel_id}/messages")
                assert untraced_status == 200

                def exported() -> bool:
                    gevent.sleep(0.1)
                    names = {span.name for span in otlp.in_trace(TRACE_ID)}
                    return {"POST /api/v10/channels/<channel_id>/messages", "chatstore.message_store.create_message",
                            "chatstore.events.record", "chatstore.events.publish"} <= names

                wait_for(exported, EXPORT_SECONDS, "the request's spans at the collector")
                log = server.log()

            spans = otlp.in_trace(TRACE_ID)
            by_name = {span.name: span for span in spans}
            request = by_name["POST /api/v10/channels/<channel_id>/messages"]
            assert request.parent_span_id == CALLER_SPAN_ID
            assert request.attributes["http.route"] == "/api/v10/channels/<channel_id>/messages"
            assert by_name["chatstore.message_store.create_message"].attributes[
                "chatstore.message_store.backend"] == "sql"
            statements = [span for span in spans if span.attributes.get("db.system") == "sqlite"
                          or span.attributes.get("db.system.name") == "sqlite"]
            assert statements, sorted(by_name)
            assert all(str(message["id"]) not in json.dumps(span.attributes) for span in statements), \
                "statement parameters must not reach the spans"
            # The new trace of the unsampled read left nothing at the collector.
            assert {span.trace_id for span in otlp.spans if span.kind == 2} == {TRACE_ID}

            record = by_name["chatstore.events.record"]
            bus = build_bus(settings, resources.engine)
            events = [event for partition in range(bus.partitions) for event in bus.read(partition, None, 100)
                      if event.type == "MESSAGE_CREATE"]
            assert [event.traceparent.split("-")[1:3] for event in events] == [[TRACE_ID, record.span_id]]
            # The relay's publish joins the trace of the (only) sampled write of its batch, and links to it.
            publish = by_name["chatstore.events.publish"]
            assert (TRACE_ID, record.span_id) in publish.links

            access = [json.loads(line) for line in log.splitlines()
                      if line.startswith("{") and '"chatstore.access"' in line and "POST" in line]
            assert [line["trace_id"] for line in access] == [TRACE_ID]
        finally:
            resources.close()
