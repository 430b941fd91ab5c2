"""Events: what happened after a write, for whoever listens.

``app.events.base`` is the durable event stream's contract (``Event``, ``EventBus``); ``outbox`` and ``relay``
carry events from the writer's transaction onto a bus; ``sql`` and ``redis`` are the buses. The names re-exported
here are the in-process bus the services publish to today (``app.events.inprocess``).
"""
from app.events.inprocess import (
    ChannelPinsUpdated, Event, EventBus, MessageCreated, MessageDeleted, MessagesBulkDeleted, MessageUpdated,
    ReactionAdded, ReactionEmojiCleared, ReactionRemoved, ReactionsCleared,
)

__all__ = [
    "ChannelPinsUpdated", "Event", "EventBus", "MessageCreated", "MessageDeleted", "MessagesBulkDeleted",
    "MessageUpdated", "ReactionAdded", "ReactionEmojiCleared", "ReactionRemoved", "ReactionsCleared",
]
