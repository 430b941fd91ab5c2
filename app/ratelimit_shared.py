"""Rate-limit counts shared by the processes of one host: a `limits` storage in a memory-mapped file.

With two gunicorn workers each counting in its own memory, a client gets up to twice its limit and its
``X-RateLimit-Remaining`` goes up and down as its requests land on one worker or the other. The `limits` package
offers memory (one process) or servers (Redis, Memcached, MongoDB); nothing between. This storage is that: a
fixed table of fixed windows in a file every worker maps (the gunicorn master names it, config/gunicorn.py; under
/dev/shm it never touches a disk), each operation under ``flock``, which the kernel releases when a worker
dies holding it, so a SIGKILLed worker cannot wedge the others. An operation is a few microseconds: a lock, one
to a few 24-byte slots read and written, an unlock (measured against per-worker memory in docs/measurements.md).

The table is an open-addressed hash of ``SLOTS`` entries (key hash, window end in ms since the epoch, count). A
window that has ended frees its slot for any key; if every slot a key may use holds a live window, the one that
ends first is taken over (its client's count starts again: lenient, never a refusal that was not earned).
"""
from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import time
from pathlib import Path

from limits.storage import Storage

#: Slots in the table (24 bytes each: 1.5 MiB). Windows last seconds; a host sees far fewer live keys.
SLOTS = 65536
#: Consecutive slots a key may occupy, starting from its hash.
PROBES = 16
_SLOT = struct.Struct("<QQQ")  # key hash (0: never used), window end (ms since the epoch), count
TABLE_BYTES = SLOTS * _SLOT.size


def _key_hash(key: str) -> int:
    # Never 0, which marks a slot never used.
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") | 1


class SharedMemoryStorage(Storage):
    """A `limits` storage of fixed windows in a table mapped from ``path``; every process mapping the same file
    counts in the same windows. Without a path, an anonymous private table (one process)."""

    STORAGE_SCHEME = None  # built directly by app.ratelimit, not from a URL

    def __init__(self, path: Path | None = None):
        super().__init__(uri=None)
        if path is None:
            self._descriptor = None
            self._table = mmap.mmap(-1, TABLE_BYTES)
        else:
            self._descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            with self._locked():
                # The first process to map the file sizes it; growing a file adds zeros, which is an empty table.
                if os.fstat(self._descriptor).st_size < TABLE_BYTES:
                    os.ftruncate(self._descriptor, TABLE_BYTES)
            self._table = mmap.mmap(self._descriptor, TABLE_BYTES)

    @property
    def base_exceptions(self) -> type[Exception]:
        return OSError

    def _locked(self):
        return _Flock(self._descriptor)

    def _find(self, key_hash: int, now_ms: int, claim: bool) -> int | None:
        """The offset of the key's live slot; with ``claim``, of a slot to start its window in when it has none."""
        start = key_hash % SLOTS
        reusable = None
        soonest, soonest_end = None, None
        for probe in range(PROBES):
            offset = ((start + probe) % SLOTS) * _SLOT.size
            held, window_end, _count = _SLOT.unpack_from(self._table, offset)
            if held == key_hash and window_end > now_ms:
                return offset
            if held == 0:  # never used: no key was placed beyond it
                return (reusable if reusable is not None else offset) if claim else None
            if window_end <= now_ms and reusable is None:
                reusable = offset
            if soonest_end is None or window_end < soonest_end:
                soonest, soonest_end = offset, window_end
        if not claim:
            return None
        return reusable if reusable is not None else soonest

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        key_hash, now_ms = _key_hash(key), _now_ms()
        with self._locked():
            offset = self._find(key_hash, now_ms, claim=True)
            held, window_end, count = _SLOT.unpack_from(self._table, offset)
            if held != key_hash or window_end <= now_ms:
                window_end, count = now_ms + int(expiry * 1000), 0
            count += amount
            _SLOT.pack_into(self._table, offset, key_hash, window_end, count)
            return count

    def get(self, key: str) -> int:
        with self._locked():
            offset = self._find(_key_hash(key), _now_ms(), claim=False)
            return 0 if offset is None else _SLOT.unpack_from(self._table, offset)[2]

    def get_expiry(self, key: str) -> float:
        with self._locked():
            offset = self._find(_key_hash(key), _now_ms(), claim=False)
            return time.time() if offset is None else _SLOT.unpack_from(self._table, offset)[1] / 1000

    def clear(self, key: str) -> None:
        with self._locked():
            offset = self._find(_key_hash(key), _now_ms(), claim=False)
            if offset is not None:
                # The hash stays: a slot once used keeps the probe sequence of the keys placed beyond it.
                held = _SLOT.unpack_from(self._table, offset)[0]
                _SLOT.pack_into(self._table, offset, held, 0, 0)

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        with self._locked():
            self._table[:] = bytes(TABLE_BYTES)
        return None


def _now_ms() -> int:
    return int(time.time() * 1000)


class _Flock:
    """An exclusive ``flock`` on the table's file for the block (nothing to lock for a private table)."""

    __slots__ = ("_descriptor",)

    def __init__(self, descriptor: int | None):
        self._descriptor = descriptor

    def __enter__(self):
        if self._descriptor is not None:
            fcntl.flock(self._descriptor, fcntl.LOCK_EX)

    def __exit__(self, *exc_info):
        if self._descriptor is not None:
            fcntl.flock(self._descriptor, fcntl.LOCK_UN)
        return False
