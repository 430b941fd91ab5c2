"""Metrics in one process: requests by route template, store calls by outcome, the pool, and /metrics itself."""
from __future__ import annotations

import gevent
import pytest
from sqlalchemy import text

from app.extensions import create_db_engine
from app.messages.base import MessageStore, StoreUnavailable
from app.messages.instrumented import InstrumentedMessageStore
from app.messages.sql import SqlMessageStore
from app.observability.metrics import COALESCED_READS, RATE_LIMITED
from models.base import shared_transaction
from tests.ops.conftest import sample


def test_requests_are_counted_and_timed_by_route_template_method_and_status(client, make):
    owner = make.actor()
    _guild_id, channel_id = make.guild(owner)
    labels = {"route": "/api/v10/channels/<channel_id>", "method": "GET", "status": "200"}
    count_before = sample("chatstore_http_requests_total", **labels)
    timed_before = sample("chatstore_http_request_duration_seconds_count", **labels)
    unmatched_before = sample("chatstore_http_requests_total", route="<unmatched>", method="GET", status="404")

    for _ in range(3):
        assert client.get(f"/api/v10/channels/{channel_id}", headers=owner.headers).status_code == 200
    client.get(f"/nowhere/{channel_id}")

    assert sample("chatstore_http_requests_total", **labels) == count_before + 3
    assert sample("chatstore_http_request_duration_seconds_count", **labels) == timed_before + 3
    assert sample("chatstore_http_requests_total", route="<unmatched>", method="GET", status="404") == \
        unmatched_before + 1
    exposition = client.get("/metrics").get_data(as_text=True)
    assert str(channel_id) not in exposition
    assert sample("chatstore_http_requests_in_progress") == 0


def test_store_calls_through_the_api_are_counted_by_backend_operation_and_outcome(client, make, resources):
    owner = make.actor()
    _guild_id, channel_id = make.guild(owner)
    backend = resources.message_store.backend
    labels = {"backend": backend, "operation": "create_message", "outcome": "ok"}
    before = sample("chatstore_message_store_calls_total", **labels)
    timed_before = sample("chatstore_message_store_call_duration_seconds_count", **labels)

    response = client.post(f"/api/v10/channels/{channel_id}/messages", json={"content": "hi"}, headers=owner.headers)

    assert response.status_code == 200
    assert backend == "sql"
    assert sample("chatstore_message_store_calls_total", **labels) == before + 1
    assert sample("chatstore_message_store_call_duration_seconds_count", **labels) == timed_before + 1


def test_a_write_in_a_shared_transaction_is_counted_once_when_it_is_executed(resources, make):
    """On PostgreSQL the write is held for the transaction's next statement (models.base.execute_later) and counted
    when the transaction ends; on SQLite it is executed, and counted, at once."""
    owner = make.actor()
    _guild_id, channel_id = make.guild(owner)
    store = resources.message_store
    labels = {"backend": store.backend, "operation": "add_reaction", "outcome": "ok"}
    before = sample("chatstore_message_store_calls_total", **labels)
    held = resources.engine.dialect.name == "postgresql"

    with shared_transaction(resources.engine):
        store.add_reaction(channel_id, 1, "👍", owner.id)
        assert sample("chatstore_message_store_calls_total", **labels) == before + (0 if held else 1)

    assert sample("chatstore_message_store_calls_total", **labels) == before + 1


def test_the_instrumented_store_is_a_transparent_message_store(resources, make):
    store = resources.message_store
    backend_store = store.layer(SqlMessageStore)
    owner = make.actor()
    _guild_id, channel_id = make.guild(owner)

    assert isinstance(store, InstrumentedMessageStore) and isinstance(store, MessageStore)
    assert not InstrumentedMessageStore.__abstractmethods__
    assert store.list_messages.__doc__ == MessageStore.list_messages.__doc__
    assert store.list_messages(channel_id, limit=5) == backend_store.list_messages(channel_id, limit=5) == []
    assert store.get_message(channel_id, 1) is None
    assert store.layer(InstrumentedMessageStore) is store


@pytest.mark.parametrize(("raised", "outcome"), [(StoreUnavailable("down"), "unavailable"),
                                                 (KeyError("bug"), "error")])
def test_failed_store_calls_are_counted_by_outcome_and_still_raise(resources, monkeypatch, raised, outcome):
    store = resources.message_store

    def fail(*_args, **_kwargs):
        raise raised

    monkeypatch.setattr(store.layer(SqlMessageStore), "count_pins", fail)
    labels = {"backend": store.backend, "operation": "count_pins", "outcome": outcome}
    before = sample("chatstore_message_store_calls_total", **labels)

    with pytest.raises(type(raised)):
        store.count_pins(1)

    assert sample("chatstore_message_store_calls_total", **labels) == before + 1
    assert sample("chatstore_message_store_call_duration_seconds_count", **labels) == before + 1


def test_pool_gauges_show_connections_in_use_and_checkouts_waiting(database):
    settings = database.replace(db_pool_size=1, db_pool_timeout=5)
    engine = create_db_engine(settings)
    capacity = 1 if settings.is_sqlite else 2  # SQLite: one connection; PostgreSQL: twice DB_POOL_SIZE
    held = [engine.connect() for _ in range(capacity)]
    try:
        for connection in held:
            connection.execute(text("SELECT 1"))
        assert sample("chatstore_db_pool_connections_in_use") == capacity
        assert sample("chatstore_db_pool_checkouts_waiting") == 0

        def query():
            with engine.connect() as connection:
                return connection.execute(text("SELECT 7")).scalar()

        waiter = gevent.spawn(query)
        gevent.sleep(0.1)
        assert sample("chatstore_db_pool_checkouts_waiting") == 1

        held.pop().close()
        assert waiter.get(timeout=5) == 7
        assert sample("chatstore_db_pool_checkouts_waiting") == 0
        assert sample("chatstore_db_pool_connections_in_use") == capacity - 1
    finally:
        for connection in held:
            connection.close()
        engine.dispose()
    assert sample("chatstore_db_pool_connections_in_use") == 0


def test_metrics_endpoint_serves_every_metric_without_auth(client):
    COALESCED_READS.inc()
    RATE_LIMITED.inc()

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    body = response.get_data(as_text=True)
    for name in ("chatstore_http_requests_total", "chatstore_http_request_duration_seconds",
                 "chatstore_http_requests_in_progress", "chatstore_message_store_calls_total",
                 "chatstore_message_store_call_duration_seconds", "chatstore_db_pool_connections_in_use",
                 "chatstore_db_pool_checkouts_waiting", "chatstore_coalesced_reads_total",
                 "chatstore_rate_limited_total", "chatstore_gevent_hub_blocked_total",
                 "chatstore_process_resident_memory_bytes"):
        assert f"\n# HELP {name} " in body, name
    assert sample("chatstore_coalesced_reads_total") >= 1 and sample("chatstore_rate_limited_total") >= 1
    assert 10e6 < sample("chatstore_process_resident_memory_bytes") < 4e9


def test_metrics_can_be_turned_off(database):
    from app import create_app

    quiet = create_app(database.replace(metrics_enabled=False))
    try:
        resources = quiet.extensions["chatstore"]
        assert quiet.test_client().get("/metrics").status_code == 404
        assert not isinstance(resources.message_store, InstrumentedMessageStore)
        assert type(resources.engine.pool).__name__ == "QueuePool"
        assert quiet.test_client().get("/healthz").headers["X-Request-ID"]
    finally:
        quiet.extensions["chatstore"].close()
