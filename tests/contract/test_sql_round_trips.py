"""On PostgreSQL a read of one statement costs one round trip: the statement runs as its own transaction, with
psycopg2 in autocommit, instead of BEGIN, the statement, then COMMIT or the pool's ROLLBACK (models.base.
single_statements). A SQLAlchemy event does not see psycopg2's implicit BEGIN, so every statement the driver
is given is recorded with libpq's transaction status right after it: idle means no BEGIN went before it and no
transaction is left for a COMMIT or ROLLBACK to end."""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import psycopg2
import pytest
from psycopg2.extensions import TRANSACTION_STATUS_IDLE, TRANSACTION_STATUS_INTRANS
from sqlalchemy import event, text

from app.extensions import create_db_engine
from app.messages.base import Message, StoreUnavailable
from app.messages.sql import SqlMessageStore
from app.read_cache import _READ_BOTH_VERSIONS
from models.base import read_one_row, shared_transaction
from tests.contract.builders import AUTHOR, BASE, CHANNEL, post


class _Sent:
    """The statements given to the driver of an engine's connections, each with the transaction status after it."""

    def __init__(self):
        self.statements: list[tuple[str, int]] = []

    def cursor_factory(self):
        sent = self.statements

        class RecordingCursor(psycopg2.extensions.cursor):
            def execute(self, query, vars=None):
                try:
                    return super().execute(query, vars)
                finally:
                    sent.append((query, self.connection.info.transaction_status))

        return RecordingCursor

    def statuses(self) -> list[int]:
        return [status for _query, status in self.statements]


@pytest.fixture
def recorded(store_factory, store) -> Iterator[tuple[SqlMessageStore, _Sent]]:
    """A store on an engine of one pooled connection whose statements are recorded."""
    engine = create_db_engine(dataclasses.replace(store_factory.settings, db_pool_size=1))
    sent = _Sent()
    factory = sent.cursor_factory()

    @event.listens_for(engine, "connect")
    def record(dbapi_connection, _record) -> None:
        dbapi_connection.cursor_factory = factory

    try:
        yield SqlMessageStore(engine), sent
    finally:
        engine.dispose()


def _after_each_read(store, sent, read) -> None:
    sent.statements.clear()
    read()
    assert sent.statuses() == [TRANSACTION_STATUS_IDLE], sent.statements
    _assert_the_next_transaction_is_one(store, sent)


def _assert_the_next_transaction_is_one(store, sent) -> None:
    """The pool's connection went back out of autocommit: a transaction begun on it is one."""
    sent.statements.clear()
    with store.engine.begin() as connection:
        connection.execute(text("SELECT 1"))
        assert not connection.connection.driver_connection.autocommit
    assert sent.statuses() == [TRANSACTION_STATUS_INTRANS]


@pytest.mark.parametrize("store_factory", ["postgres"], indirect=True)
@pytest.mark.parametrize("read", ["list_messages", "get_message", "get_messages_by_key", "reaction_counts",
                                  "count_messages"])
def test_a_store_read_is_one_statement_outside_a_transaction(recorded, read):
    store, sent = recorded
    post(store, BASE)
    store.add_reaction(CHANNEL, BASE, "x", AUTHOR)
    reads = {
        "list_messages": lambda: store.list_messages(CHANNEL, limit=50),
        "get_message": lambda: store.get_message(CHANNEL, BASE),
        "get_messages_by_key": lambda: store.get_messages_by_key([(CHANNEL, BASE)]),
        "reaction_counts": lambda: store.reaction_counts(CHANNEL, [BASE], AUTHOR),
        "count_messages": lambda: store.count_messages(CHANNEL),
    }
    _after_each_read(store, sent, reads[read])


@pytest.mark.parametrize("store_factory", ["postgres"], indirect=True)
def test_the_read_caches_version_read_is_one_statement_outside_a_transaction(recorded):
    store, sent = recorded
    _after_each_read(store, sent, lambda: read_one_row(store.engine, _READ_BOTH_VERSIONS, {"channel_id": CHANNEL}))


@pytest.mark.parametrize("store_factory", ["postgres"], indirect=True)
def test_a_read_in_a_shared_transaction_joins_it(recorded):
    store, sent = recorded
    with shared_transaction(store.engine) as connection:
        store.create_message(Message(id=BASE, channel_id=CHANNEL, author_id=AUTHOR, content="not yet committed"))
        sent.statements.clear()
        assert store.get_message(CHANNEL, BASE).content == "not yet committed"
        # The transaction's connection sends through its own cursor class (models.base), which records nothing:
        # a read on any other connection of the pool would have been recorded.
        assert sent.statements == []
        assert connection.connection.driver_connection.info.transaction_status == TRANSACTION_STATUS_INTRANS
    _assert_the_next_transaction_is_one(store, sent)


@pytest.mark.parametrize("store_factory", ["postgres"], indirect=True)
def test_a_read_that_fails_returns_its_connection_out_of_autocommit(store_factory, recorded):
    store, sent = recorded
    with store_factory.engine.connect() as blocker:
        blocker.execute(text("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE"))
        with store.engine.connect() as connection:
            connection.execute(text("SET statement_timeout = 100"))
            connection.commit()
        with pytest.raises(StoreUnavailable):
            store.get_message(CHANNEL, BASE)
        blocker.rollback()
    _assert_the_next_transaction_is_one(store, sent)
