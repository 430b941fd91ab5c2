"""The message store contract suite runs every test once per backend in STORE_BACKENDS.

A backend joins the suite with a name in STORE_BACKENDS and an entry in OPENERS: a context manager, given
pytest's ``tmp_path_factory``, that sets the backend up once per session and yields a :class:`StoreFactory`.
The Scylla backend's entry goes next to the SQL ones (its stores come from ``tests.scylla.stores``).

These fixtures are separate from the root conftest's ``database`` fixture, so API tests do not run once more
per store backend.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

import pytest
from sqlalchemy import event

from app.extensions import create_db_engine
from app.messages.base import MessageStore
from app.messages.sql_tables import ChannelBucket, MessageNonce, PinnedMessage, Reaction, StoredMessage
from config import Settings
from tests.scylla.stores import real_cluster_backend, test_node_backend
from tests.support.databases import migrated_database

STORE_BACKENDS = ["sqlite", "postgres", "scylla", "scylla-cluster"]


MESSAGE_TABLES = [model.__table__ for model in (StoredMessage, ChannelBucket, Reaction, PinnedMessage, MessageNonce)]


class StoreFactory(Protocol):
    def fresh(self) -> AbstractContextManager[MessageStore]:
        """A store on empty tables, torn down afterwards."""

    def unreachable(self) -> AbstractContextManager[MessageStore]:
        """A store configured like the real one whose database does not answer."""


class SqlStoreFactory:
    def __init__(self, settings: Settings, unreachable_url: str):
        self.settings = settings
        self.unreachable_url = unreachable_url
        self.engine = create_db_engine(settings)

    @contextlib.contextmanager
    def fresh(self) -> Iterator[MessageStore]:
        from app.messages.sql import SqlMessageStore

        try:
            yield SqlMessageStore(self.engine)
        finally:
            # The store writes only these tables; a DELETE of a few rows is much cheaper than a TRUNCATE of all.
            with self.engine.begin() as connection:
                for table in MESSAGE_TABLES:
                    connection.execute(table.delete())

    @contextlib.contextmanager
    def unreachable(self) -> Iterator[MessageStore]:
        from app.messages.sql import SqlMessageStore

        engine = create_db_engine(Settings(database_url=self.unreachable_url, db_pool_timeout=1.0))
        try:
            yield SqlMessageStore(engine)
        finally:
            engine.dispose()

    def close(self) -> None:
        self.engine.dispose()


@contextlib.contextmanager
def sql_backend(backend: str, unreachable_url: Callable[[Path], str], tmp_path_factory) -> Iterator[SqlStoreFactory]:
    directory = tmp_path_factory.mktemp(f"store-{backend}")
    with migrated_database(backend, directory) as settings:
        factory = SqlStoreFactory(settings, unreachable_url(directory))
        try:
            yield factory
        finally:
            factory.close()


OPENERS: dict[str, Callable[..., AbstractContextManager[StoreFactory]]] = {
    # SQLite cannot open a directory as a database file: every statement fails like a lost disk would.
    "sqlite": lambda tmp: sql_backend("sqlite", lambda directory: f"sqlite:///{directory}", tmp),
    # Port 1 on loopback refuses connections at once.
    "postgres": lambda tmp: sql_backend(
        "postgres", lambda _: "postgresql+psycopg2://postgres@127.0.0.1:1/chatstore", tmp),
    # The real driver against in-process CQL test nodes; and a real cluster when TEST_SCYLLA_HOSTS names one.
    "scylla": lambda tmp: test_node_backend(),
    "scylla-cluster": lambda tmp: real_cluster_backend(),
}


@pytest.fixture(scope="session", params=STORE_BACKENDS)
def store_factory(request, tmp_path_factory) -> Iterator[StoreFactory]:
    with OPENERS[request.param](tmp_path_factory) as factory:
        yield factory


@pytest.fixture
def store(store_factory) -> Iterator[MessageStore]:
    with store_factory.fresh() as fresh:
        yield fresh


@pytest.fixture
def unreachable_store(store_factory) -> Iterator[MessageStore]:
    with store_factory.unreachable() as unreachable:
        yield unreachable


class StatementCounter:
    """Counts the SQL statements an engine executes while counting is on."""

    def __init__(self, engine):
        self.engine = engine
        self.count = 0

    def _on_execute(self, *_args) -> None:
        self.count += 1

    @contextlib.contextmanager
    def counting(self) -> Iterator[StatementCounter]:
        self.count = 0
        event.listen(self.engine, "before_cursor_execute", self._on_execute)
        try:
            yield self
        finally:
            event.remove(self.engine, "before_cursor_execute", self._on_execute)


@pytest.fixture
def sql_statements(store) -> StatementCounter | None:
    """A statement counter on the store's engine, or None when the backend is not SQL."""
    engine = getattr(store, "engine", None)
    return StatementCounter(engine) if engine is not None else None
