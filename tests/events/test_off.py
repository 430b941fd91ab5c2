"""EVENT_BUS=off: writes record no events, no bus is asked for readiness, and the commands say why they refuse."""
from __future__ import annotations

import pytest

from app import create_app
from tests.support.databases import empty_tables, migrated_database
from tests.support.events import Published
from tests.support.factories import Factory


@pytest.fixture(scope="module")
def quiet_app(tmp_path_factory):
    with migrated_database("sqlite", tmp_path_factory.mktemp("events-off")) as settings:
        app = create_app(settings.replace(event_bus="off"))
        yield app
        resources = app.extensions["chatstore"]
        empty_tables(resources.engine)
        resources.close()


def test_writes_record_no_events_when_events_are_off(quiet_app):
    resources = quiet_app.extensions["chatstore"]
    published = Published(resources.engine)
    owner = Factory(resources).actor()
    _guild_id, channel_id = Factory(resources).guild(owner)
    client = quiet_app.test_client()

    sent = client.post(f"/api/v10/channels/{channel_id}/messages", json={"content": "unannounced"},
                       headers=owner.headers)

    assert sent.status_code == 200
    assert len(published) == 0
    ready = client.get("/readyz").get_json()
    assert ready["status"] == "ok" and "event_bus" not in ready["checks"]


def test_event_commands_refuse_when_events_are_off(quiet_app):
    for command in (["events", "tail"], ["events", "relay"]):
        result = quiet_app.test_cli_runner().invoke(args=command)
        assert result.exit_code == 1
        assert "EVENT_BUS=off" in result.output
