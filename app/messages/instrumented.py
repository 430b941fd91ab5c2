"""Metrics around the message store: every interface call counted and timed by backend, operation and outcome."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from app.messages.base import StoreDecorator, StoreUnavailable
from app.observability.metrics import STORE_CALL_DURATION, STORE_CALLS


class InstrumentedMessageStore(StoreDecorator):
    """Times and counts every call of the interface on its way to ``inner``."""

    def call(self, operation: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        outcome = "error"
        try:
            result = method(*args, **kwargs)
            outcome = "ok"
            return result
        except StoreUnavailable:
            outcome = "unavailable"
            raise
        finally:
            labels = (self.backend, operation, outcome)
            STORE_CALLS.labels(*labels).inc()
            STORE_CALL_DURATION.labels(*labels).observe(time.perf_counter() - started)
