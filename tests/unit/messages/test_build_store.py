"""build_store: the stack a process gets is the one its settings describe."""
from __future__ import annotations

import pytest
from sqlalchemy import create_engine

from app.messages import build_store
from app.messages.coalescing import CoalescingMessageStore
from app.messages.dual import DualMessageStore
from app.messages.instrumented import InstrumentedMessageStore
from app.messages.sql import SqlMessageStore
from config import Settings


@pytest.fixture
def engine(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    yield engine
    engine.dispose()


def kinds(store) -> list[type]:
    found = [type(store)]
    while hasattr(store, "inner"):
        store = store.inner
        found.append(type(store))
    return found


def test_the_default_stack_is_metrics_then_coalescing_then_the_backend(engine):
    store = build_store(Settings(), engine)
    assert kinds(store) == [InstrumentedMessageStore, CoalescingMessageStore, SqlMessageStore]
    assert store.backend == "sql"


@pytest.mark.parametrize(("changes", "expected"), [
    ({"metrics_enabled": False}, [CoalescingMessageStore, SqlMessageStore]),
    ({"coalesce_reads": False}, [InstrumentedMessageStore, SqlMessageStore]),
    ({"metrics_enabled": False, "coalesce_reads": False}, [SqlMessageStore]),
])
def test_settings_leave_layers_out(engine, changes, expected):
    assert kinds(build_store(Settings(**changes), engine)) == expected


def test_a_dual_store_pairs_the_two_named_backends(engine):
    store = build_store(Settings(message_store="dual", dual_primary="sql", dual_secondary="sql",
                                 metrics_enabled=False, coalesce_reads=False), engine)
    assert isinstance(store, DualMessageStore)
    assert isinstance(store.primary, SqlMessageStore) and isinstance(store.secondary, SqlMessageStore)
