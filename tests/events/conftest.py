"""The event bus conformance suite runs every test once per backend in BUS_BACKENDS.

A backend joins with a name here and an entry in OPENERS: a context manager, given pytest's
``tmp_path_factory``, that sets the backend up once per session and yields a :class:`BusFactory`, whose
``fresh(**retention)`` yields a bus on empty state and cleans up after it.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from app.events.base import EventBus
from app.events.redis import RedisEventBus
from app.events.sql import SqlEventBus
from app.extensions import create_db_engine
from config import Settings
from models.events import (
    event_group_offsets,
    event_group_pending,
    event_outbox,
    event_partitions,
    event_relay_lease,
    event_stream,
)
from tests.support.databases import migrated_database
from tests.support.redis import REDIS_URL, delete_prefixed, require_redis, unique_prefix

BUS_BACKENDS = ["sqlite", "postgres", "redis"]
#: Few partitions keep every per-partition loop short; the tests spread guilds over all of them.
PARTITIONS = 4
EVENT_TABLES = [event_stream, event_partitions, event_group_offsets, event_group_pending, event_outbox,
                event_relay_lease]


def empty_event_tables(engine) -> None:
    with engine.begin() as connection:
        for table in EVENT_TABLES:
            connection.execute(table.delete())


class SqlBusFactory:
    def __init__(self, settings, unreachable_url: str):
        self.settings = settings
        self.unreachable_url = unreachable_url
        self.engine = create_db_engine(settings)

    @contextlib.contextmanager
    def fresh(self, **retention) -> Iterator[SqlEventBus]:
        bus = SqlEventBus(self.engine, PARTITIONS, **(retention or {"max_age_seconds": 86400}))
        try:
            yield bus
        finally:
            bus.close()
            empty_event_tables(self.engine)

    def another(self, bus: SqlEventBus) -> SqlEventBus:
        """A second bus on the same data, as another process would have (its own wake-ups)."""
        return SqlEventBus(self.engine, PARTITIONS, max_age_seconds=bus.max_age_seconds, max_events=bus.max_events)

    @contextlib.contextmanager
    def unreachable(self) -> Iterator[SqlEventBus]:
        engine = create_db_engine(Settings(database_url=self.unreachable_url, db_pool_timeout=1.0))
        try:
            yield SqlEventBus(engine, PARTITIONS, max_age_seconds=86400)
        finally:
            engine.dispose()

    def close(self) -> None:
        self.engine.dispose()


class RedisBusFactory:
    @contextlib.contextmanager
    def fresh(self, **retention) -> Iterator[RedisEventBus]:
        prefix = unique_prefix()
        bus = RedisEventBus.from_url(REDIS_URL, PARTITIONS, prefix=prefix,
                                     **(retention or {"max_age_seconds": 86400}))
        try:
            yield bus
        finally:
            bus.close()
            delete_prefixed(REDIS_URL, prefix)

    def another(self, bus: RedisEventBus) -> RedisEventBus:
        return RedisEventBus.from_url(REDIS_URL, PARTITIONS, prefix=bus.prefix, max_age_seconds=bus.max_age_seconds,
                                      max_events=bus.max_events)

    @contextlib.contextmanager
    def unreachable(self) -> Iterator[RedisEventBus]:
        # Port 1 on loopback refuses connections at once.
        bus = RedisEventBus.from_url("redis://127.0.0.1:1/0", PARTITIONS, prefix=unique_prefix(),
                                     max_age_seconds=86400)
        try:
            yield bus
        finally:
            bus.close()

    def close(self) -> None:
        pass


@contextlib.contextmanager
def sql_backend(backend: str, tmp_path_factory) -> Iterator[SqlBusFactory]:
    directory = tmp_path_factory.mktemp(f"events-{backend}")
    # SQLite cannot open a directory as a database; port 1 on loopback refuses connections at once.
    unreachable_url = (f"sqlite:///{directory}" if backend == "sqlite"
                       else "postgresql+psycopg2://postgres@127.0.0.1:1/chatstore")
    with migrated_database(backend, directory) as settings:
        factory = SqlBusFactory(settings, unreachable_url)
        try:
            yield factory
        finally:
            factory.close()


@contextlib.contextmanager
def redis_backend(_tmp_path_factory) -> Iterator[RedisBusFactory]:
    require_redis()
    yield RedisBusFactory()


OPENERS: dict[str, Callable[..., contextlib.AbstractContextManager]] = {
    "sqlite": lambda tmp: sql_backend("sqlite", tmp),
    "postgres": lambda tmp: sql_backend("postgres", tmp),
    "redis": redis_backend,
}


@pytest.fixture(scope="session", params=BUS_BACKENDS)
def bus_factory(request, tmp_path_factory):
    with OPENERS[request.param](tmp_path_factory) as factory:
        yield factory


@pytest.fixture
def bus(bus_factory) -> Iterator[EventBus]:
    with bus_factory.fresh() as fresh:
        yield fresh


@pytest.fixture
def unreachable_bus(bus_factory) -> Iterator[EventBus]:
    with bus_factory.unreachable() as unreachable:
        yield unreachable
