"""One conformance suite over every storage the rate limits may count in: the host's shared table (two mappings of
one file, as two workers have), limits' own memory storage, and Redis (a private server)."""
from __future__ import annotations

import time

import pytest
from limits.storage import MemoryStorage

from app import ratelimit_shared
from app.ratelimit import _MillisecondRedisStorage
from app.ratelimit_shared import SharedMemoryStorage
from tests.security.servers import redis_server


@pytest.fixture(params=["shared-table", "memory", "redis"])
def storages(request, tmp_path):
    """Two handles on one storage: what one counts, the other sees."""
    if request.param == "shared-table":
        path = tmp_path / "table"
        yield SharedMemoryStorage(path), SharedMemoryStorage(path)
    elif request.param == "memory":
        storage = MemoryStorage()
        yield storage, storage
    else:
        with redis_server() as url:
            yield _MillisecondRedisStorage(url), _MillisecondRedisStorage(url)


def test_counts_are_shared_and_windows_are_fixed(storages):
    first, second = storages
    assert first.incr("k", 30) == 1
    assert second.incr("k", 30) == 2
    assert first.incr("k", 30, amount=3) == 5
    assert (first.get("k"), second.get("k")) == (5, 5)
    expiry = second.get_expiry("k")
    assert time.time() + 28 < expiry <= time.time() + 30
    assert first.incr("k", 30) == 6 and abs(first.get_expiry("k") - expiry) < 0.01  # the window does not move
    assert first.get("other") == 0


def test_a_window_ends_and_a_cleared_key_starts_again(storages):
    first, second = storages
    first.incr("short", 1)
    first.incr("cleared", 30)
    second.clear("cleared")
    assert first.get("cleared") == 0 and first.incr("cleared", 30) == 1
    deadline = time.monotonic() + 5
    while first.get("short") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.get("short") == 0 and second.incr("short", 1) == 1


def test_a_full_table_takes_over_the_window_that_ends_first(monkeypatch, tmp_path):
    """Keys beyond what the slots a key may use can hold: the soonest-ending window is taken over, and the others
    keep their counts."""
    monkeypatch.setattr(ratelimit_shared, "SLOTS", 4)
    monkeypatch.setattr(ratelimit_shared, "PROBES", 4)
    table = SharedMemoryStorage(tmp_path / "table")
    for index, seconds in enumerate([30, 10, 40, 50]):
        table.incr(f"key{index}", seconds, amount=index + 1)
    assert table.incr("newcomer", 60) == 1
    assert [table.get(f"key{index}") for index in range(4)] == [1, 0, 3, 4]
