"""Faults only a SQL backend has: a pool with no free connection, a statement stuck behind a lock. Either one
must reach the caller as StoreUnavailable, promptly, never as a driver or pool error."""
from __future__ import annotations

import dataclasses
import time

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from app.extensions import create_db_engine
from app.messages.base import StoreUnavailable
from app.messages.sql import SqlMessageStore
from tests.contract.builders import BASE, CHANNEL, post

SQL_BACKENDS = ["sqlite", "postgres"]


def checkout_every_connection(engine) -> list:
    held = []
    while True:
        try:
            held.append(engine.connect())
        except sa_exc.TimeoutError:
            return held


@pytest.mark.parametrize("store_factory", SQL_BACKENDS, indirect=True)
def test_a_pool_without_a_free_connection_is_unavailable(store_factory):
    settings = dataclasses.replace(store_factory.settings, db_pool_size=1, db_pool_timeout=0.2)
    engine = create_db_engine(settings)
    store = SqlMessageStore(engine)
    held = checkout_every_connection(engine)
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.get_message(CHANNEL, BASE)
        assert time.monotonic() - started < 2
    finally:
        for connection in held:
            connection.close()
        engine.dispose()


@pytest.mark.parametrize("store_factory", ["postgres"], indirect=True)
def test_a_statement_timed_out_behind_a_lock_is_unavailable(store_factory, store):
    post(store, BASE)
    settings = dataclasses.replace(store_factory.settings, db_statement_timeout_ms=200)
    engine = create_db_engine(settings)
    try:
        with store_factory.engine.connect() as blocker:
            blocker.execute(text("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE"))
            with pytest.raises(StoreUnavailable):
                SqlMessageStore(engine).get_message(CHANNEL, BASE)
            blocker.rollback()
        assert SqlMessageStore(engine).get_message(CHANNEL, BASE).id == BASE
    finally:
        engine.dispose()
