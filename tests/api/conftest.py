"""Fixtures shared by the API tests."""
import pytest

from app.events import Event, EventBus


@pytest.fixture
def published(resources, monkeypatch):
    """Events published during the test, on a bus of the test's own so that no subscriber outlives it."""
    monkeypatch.setattr(resources, "events", EventBus())
    events = []
    resources.events.subscribe(Event, events.append)
    return events
