"""Fixtures for the operability tests: the service's JSON log lines, and metric values read back."""
from __future__ import annotations

import io
import json

import pytest
from prometheus_client import REGISTRY

from app.observability.logs import configure_logging


class LogLines:
    """Everything the service logged since the fixture started, as text and as parsed JSON lines."""

    def __init__(self, stream: io.StringIO):
        self._stream = stream

    @property
    def text(self) -> str:
        return self._stream.getvalue()

    def records(self, logger: str | None = None) -> list[dict]:
        parsed = [json.loads(line) for line in self.text.splitlines() if line]
        return [r for r in parsed if logger is None or r["logger"] == logger]


@pytest.fixture
def log_lines(app):
    """The app's root handler, writing to a buffer for the test (and back to stderr afterwards)."""
    stream = io.StringIO()
    configure_logging("DEBUG").setStream(stream)
    yield LogLines(stream)
    configure_logging(app.config["SETTINGS"].log_level)


def sample(name: str, **labels: str) -> float:
    """A sample of this process's metrics; 0 for a labelled series not yet created."""
    return REGISTRY.get_sample_value(name, labels) or 0.0
