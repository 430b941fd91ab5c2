"""Events: what happened after a write, for whoever listens.

``app.events.base`` is the durable event stream's contract (``Event``, ``EventBus``); ``outbox`` and ``relay``
carry events from the writer's transaction onto a bus; ``sql`` and ``redis`` are the buses. The services build
the events (app/services/dispatch.py) and hand them to the write that produces them.

:func:`build_bus` builds the bus that ``EVENT_BUS`` names, from the table :data:`BUSES`; a new backend is a
module and one entry there.
"""
from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import Engine

from app.events.base import EventBus
from config import Settings, retention_of


def _sql_bus(settings: Settings, engine: Engine) -> EventBus:
    from app.events.sql import SqlEventBus

    return SqlEventBus(engine, settings.event_partitions, **_retention(settings))


def _redis_bus(settings: Settings, engine: Engine) -> EventBus:
    from app.events.redis import RedisEventBus

    return RedisEventBus.from_url(settings.redis_url, settings.event_partitions, prefix=settings.event_redis_prefix,
                                  **_retention(settings))


def _retention(settings: Settings) -> dict[str, int | None]:
    max_age_seconds, max_events = retention_of(settings.event_retention)
    return {"max_age_seconds": max_age_seconds, "max_events": max_events}


#: EVENT_BUS name -> factory(settings, engine). The engine is the metadata database's (the outbox's).
BUSES: dict[str, Callable[[Settings, Engine], EventBus]] = {"sql": _sql_bus, "redis": _redis_bus}


def build_bus(settings: Settings, engine: Engine) -> EventBus:
    """The bus ``settings.event_bus`` names. Connects nothing: connections are made on first use.

    With ``EVENT_BUS=off`` there is none: ValueError, for a command asked to read a stream that is not there.
    """
    if not settings.events_enabled:
        raise ValueError("EVENT_BUS=off: this deployment records no events")
    return BUSES[settings.event_bus](settings, engine)


__all__ = ["BUSES", "build_bus"]
