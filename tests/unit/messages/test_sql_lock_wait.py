"""On SQLite, the SQL store waits for another process's write lock without stopping the gevent hub."""
from __future__ import annotations

import sqlite3
import time

import gevent
import pytest

from app.extensions import create_db_engine
from app.messages.base import Message, StoreUnavailable
from app.sqlite import LOCK_TIMEOUT_SECONDS
from tests.support.databases import migrated_database

CHANNEL, AUTHOR = 1_000_001, 2_000_001
HELD_SECONDS = 0.3


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    with migrated_database("sqlite", tmp_path_factory.mktemp("lock-wait")) as settings:
        yield settings


@pytest.fixture
def store(settings):
    from app.messages.sql import SqlMessageStore

    engine = create_db_engine(settings)
    store = SqlMessageStore(engine)
    store.ping()  # connected before the lock is taken, as a worker's long-lived connection is
    yield store
    engine.dispose()


@pytest.fixture
def other_process_lock(settings):
    """A second connection, standing in for the other gunicorn worker, holding the write lock."""
    connection = sqlite3.connect(settings.database_url.split("///", 1)[1], isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")
    yield connection
    connection.close()


def test_waiting_for_the_write_lock_lets_other_greenlets_run(store, other_process_lock):
    ticks = []

    def ticker():
        while True:
            ticks.append(time.monotonic())
            gevent.sleep(0.01)

    def release_later():
        gevent.sleep(HELD_SECONDS)
        other_process_lock.execute("COMMIT")

    background = [gevent.spawn(ticker), gevent.spawn(release_later)]
    started = time.monotonic()
    store.create_message(Message(id=1 << 40, channel_id=CHANNEL, author_id=AUTHOR, content="after the lock"))
    waited = time.monotonic() - started
    gevent.killall(background)
    assert waited >= HELD_SECONDS * 0.9
    # The hub kept turning while the store waited: no gap between ticks near the time the lock was held.
    assert max(later - earlier for earlier, later in zip(ticks, ticks[1:])) < HELD_SECONDS / 2
    assert store.get_message(CHANNEL, 1 << 40).content == "after the lock"


def test_a_lock_held_past_the_timeout_is_unavailable(store, other_process_lock, monkeypatch):
    monkeypatch.setattr("app.sqlite.LOCK_TIMEOUT_SECONDS", 0.2)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        store.create_message(Message(id=2 << 40, channel_id=CHANNEL, author_id=AUTHOR, content="never stored"))
    assert time.monotonic() - started < LOCK_TIMEOUT_SECONDS


def test_reads_do_not_wait_for_another_process_writing(store, other_process_lock):
    other_process_lock.execute("INSERT INTO channel_buckets (channel_id, bucket) VALUES (?, ?)", (CHANNEL + 1, 7))
    started = time.monotonic()
    assert store.channel_buckets(CHANNEL + 1) == [], "the other process has not committed yet"
    assert time.monotonic() - started < 0.1
