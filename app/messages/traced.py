"""Traces around the message store: a span per interface call, whichever backend answers it."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from app.messages.base import StoreDecorator
from app.observability.tracing import TRACER


class TracedMessageStore(StoreDecorator):
    """Runs every call of the interface on its way to ``inner`` in a span named after the operation (an error
    status and the exception when it raises, StoreUnavailable included); the backend's own spans (SQL statements,
    Scylla requests) are its children. Only inside a sampled span: an unsampled request's children would be
    dropped anyway, and a call outside any request (a CLI's import) is no trace of its own."""

    def call(self, operation: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not trace.get_current_span().is_recording():
            return method(*args, **kwargs)
        with TRACER.start_as_current_span(f"chatstore.message_store.{operation}", kind=SpanKind.CLIENT,
                                          attributes={"chatstore.message_store.backend": self.backend}):
            return method(*args, **kwargs)
