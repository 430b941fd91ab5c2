"""Metrics around the message store: every interface call counted and timed by backend, operation and outcome."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from app.messages.base import StoreDecorator, StoreUnavailable
from app.observability.metrics import STORE_CALL_DURATION, STORE_CALLS
from models.base import holds_writes, means_unavailable, when_transaction_ends


class InstrumentedMessageStore(StoreDecorator):
    """Times and counts every call of the interface on its way to ``inner``. A call that returns leaving writes
    held in the open shared transaction (``models.base.execute_later``) has not written yet: it is counted when
    that transaction ends, with its outcome, and timed from its start to then."""

    def call(self, operation: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        outcome = "error"
        try:
            result = method(*args, **kwargs)
            if holds_writes():
                when_transaction_ends(lambda error: self._record(operation, _outcome_of(error), started))
                outcome = None
            else:
                outcome = "ok"
            return result
        except StoreUnavailable:
            outcome = "unavailable"
            raise
        finally:
            if outcome is not None:
                self._record(operation, outcome, started)

    def _record(self, operation: str, outcome: str, started: float) -> None:
        labels = (self.backend, operation, outcome)
        STORE_CALLS.labels(*labels).inc()
        STORE_CALL_DURATION.labels(*labels).observe(time.perf_counter() - started)


def _outcome_of(error: BaseException | None) -> str:
    if error is None:
        return "ok"
    return "unavailable" if isinstance(error, StoreUnavailable) or means_unavailable(error) else "error"
