"""/healthz and /readyz: no auth, exact JSON content type, and a bounded answer when a dependency hangs."""
from __future__ import annotations

import time

import gevent
import pytest

from app import create_app
from app.messages.sql import SqlMessageStore


def test_healthz_answers_without_a_token_or_any_io(client, resources, monkeypatch):
    monkeypatch.setattr(type(resources), "engine", property(lambda _self: pytest.fail("healthz touched the db")))

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.get_json() == {"status": "ok"}


def test_readyz_is_200_when_the_database_the_store_and_the_event_bus_answer(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.get_json() == {"status": "ok", "checks": {"database": "ok", "message_store": "ok",
                                                              "event_bus": "ok", "blob_store": "ok"}}


def test_readyz_gives_up_on_a_hanging_store_within_the_timeout_and_says_which(client, resources, monkeypatch):
    monkeypatch.setattr(resources.message_store.layer(SqlMessageStore), "ping", lambda: gevent.sleep(30))

    started = time.monotonic()
    response = client.get("/readyz")
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert response.headers["Content-Type"] == "application/json"
    assert response.get_json() == {"status": "unavailable", "checks": {"database": "ok", "message_store": "timeout",
                                                                       "event_bus": "ok", "blob_store": "ok"}}
    assert resources.settings.readiness_timeout <= elapsed < resources.settings.readiness_timeout + 0.5


def test_readyz_reports_an_unreachable_database(database):
    # A closed port: PostgreSQL refuses at once, so this is "unavailable" rather than "timeout".
    unreachable = create_app(database.replace(database_url="postgresql+psycopg2://nobody@127.0.0.1:9/none",
                                              readiness_timeout=2.0))
    try:
        response = unreachable.test_client().get("/readyz")
    finally:
        unreachable.extensions["chatstore"].close()

    assert response.status_code == 503
    assert response.get_json()["checks"]["database"] == "unavailable"


def test_readyz_reports_an_unreachable_event_bus(database):
    # Port 1 on loopback refuses connections at once.
    unreachable = create_app(database.replace(event_bus="redis", redis_url="redis://127.0.0.1:1/0"))
    try:
        response = unreachable.test_client().get("/readyz")
    finally:
        unreachable.extensions["chatstore"].close()

    assert response.status_code == 503
    assert response.get_json()["checks"] == {"database": "ok", "message_store": "ok", "event_bus": "unavailable",
                                             "blob_store": "ok"}


def test_readyz_reports_an_unreachable_blob_store(database):
    # An S3 endpoint on a port nobody listens on: the connection is refused at once.
    unreachable = create_app(database.replace(blob_store="s3", blob_s3_bucket="attachments",
                                              blob_s3_endpoint_url="http://127.0.0.1:1", readiness_timeout=3.0))
    try:
        response = unreachable.test_client().get("/readyz")
    finally:
        unreachable.extensions["chatstore"].close()

    assert response.status_code == 503
    assert response.get_json()["checks"]["blob_store"] == "unavailable"
