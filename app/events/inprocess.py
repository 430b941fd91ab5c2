"""The in-process event bus: services publish what happened after a write; subscribers react.

Later a broker adapter subscribes here and forwards events; services never know who listens. A failing
subscriber is logged and does not fail the write that produced the event.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    channel_id: int
    guild_id: int | None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return type(self).__name__


class MessageCreated(Event):
    pass


class MessageUpdated(Event):
    pass


class MessageDeleted(Event):
    pass


class MessagesBulkDeleted(Event):
    pass


class ReactionAdded(Event):
    pass


class ReactionRemoved(Event):
    pass


class ReactionsCleared(Event):
    pass


class ReactionEmojiCleared(Event):
    pass


class ChannelPinsUpdated(Event):
    pass


class EventBus:
    def __init__(self):
        self._subscribers: dict[type[Event], list[Callable[[Event], None]]] = defaultdict(list)

    def subscribe(self, event_type: type[Event], handler: Callable[[Event], None]) -> None:
        self._subscribers[event_type].append(handler)

    def publish(self, event: Event) -> None:
        for event_type in type(event).__mro__:
            for handler in self._subscribers.get(event_type, ()):
                try:
                    handler(event)
                except Exception:
                    log.exception("event subscriber failed", extra={"event": event.name})
