"""Snowflake slots (the 10 worker+process bits): every process that mints ids holds a slot no other live
process holds, so ids are unique across gunicorn workers, CLI runs and hosts sharing the database.

- PostgreSQL (many hosts): a lease row per slot, taken and renewed through a small engine of its own, so a
  request's open transaction never waits on it. The lease is renewed lazily before an id is minted past the
  renewal point; a process that finds its lease lost takes a new slot before minting again.
- SQLite (one host by nature): an exclusive ``flock`` on one file per slot beside the database file. The
  kernel releases it when the process exits, even on a crash, and no second SQLite connection is needed
  (one would deadlock against the request's own write lock).
"""
from __future__ import annotations

import fcntl
import os
import secrets
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import create_engine, delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import NullPool

from app.ids import SLOT_COUNT, SnowflakeGenerator
from models import IdSlotLease

LEASE_SECONDS = 600
RENEW_AFTER_SECONDS = LEASE_SECONDS / 3


class NoFreeSlot(RuntimeError):
    pass


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _lease(engine: Engine, holder: str) -> int:
    """Take the lowest free slot, or one whose lease has expired."""
    for _attempt in range(5):
        now = _now()
        with engine.begin() as conn:
            leases = dict(conn.execute(select(IdSlotLease.slot, IdSlotLease.expires_at)).all())
        free = next((slot for slot in range(SLOT_COUNT) if slot not in leases), None)
        try:
            with engine.begin() as conn:
                if free is not None:
                    conn.execute(insert(IdSlotLease).values(
                        slot=free, holder=holder, expires_at=now + timedelta(seconds=LEASE_SECONDS)))
                    return free
                for slot, expires_at in sorted(leases.items(), key=lambda item: item[1]):
                    if expires_at.replace(tzinfo=timezone.utc) > now:
                        break
                    taken = conn.execute(
                        update(IdSlotLease)
                        .where(IdSlotLease.slot == slot, IdSlotLease.expires_at == expires_at)
                        .values(holder=holder, expires_at=now + timedelta(seconds=LEASE_SECONDS))
                    ).rowcount
                    if taken == 1:
                        return slot
        except IntegrityError:
            continue  # another process took the same slot first; look again
    raise NoFreeSlot(f"all {SLOT_COUNT} snowflake slots are leased")


class FileLockSlots:
    """Slots as ``flock``-ed files in ``directory``; for databases that live on one host."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._handle = None

    def acquire(self) -> int:
        self.directory.mkdir(parents=True, exist_ok=True)
        for slot in range(SLOT_COUNT):
            handle = open(self.directory / f"{slot:04d}.lock", "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            self._handle = handle
            return slot
        raise NoFreeSlot(f"all {SLOT_COUNT} snowflake slots in {self.directory} are locked")

    def renew(self, slot: int) -> bool:
        return self._handle is not None

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class DatabaseLeaseSlots:
    """Slots as expiring lease rows, for a database shared by many hosts."""

    def __init__(self, database_url: str):
        self._engine = create_engine(database_url, poolclass=NullPool)
        self._holder = f"{socket.gethostname()[:64]}:{os.getpid()}:{secrets.token_hex(6)}"

    def acquire(self) -> int:
        return _lease(self._engine, self._holder)

    def renew(self, slot: int) -> bool:
        with self._engine.begin() as conn:
            return conn.execute(
                update(IdSlotLease)
                .where(IdSlotLease.slot == slot, IdSlotLease.holder == self._holder)
                .values(expires_at=_now() + timedelta(seconds=LEASE_SECONDS))
            ).rowcount == 1

    def release(self) -> None:
        with self._engine.begin() as conn:
            conn.execute(delete(IdSlotLease).where(IdSlotLease.holder == self._holder))
        self._engine.dispose()


def slots_for(database_url: str):
    """The slot allocator that fits the database: file locks for SQLite, lease rows otherwise."""
    if database_url.startswith("sqlite"):
        path = database_url.split("///", 1)[-1]
        if not path or path == ":memory:":
            raise ValueError("snowflake slots need a file database, not an in-memory one")
        return FileLockSlots(Path(path + ".slots"))
    return DatabaseLeaseSlots(database_url)


class LeasedSnowflakes:
    """A snowflake generator whose slot is taken from an allocator on first use and renewed lazily."""

    def __init__(self, slots, clock=time.time):
        self._slots = slots
        self._clock = clock
        self._lock = threading.Lock()
        self._generator: SnowflakeGenerator | None = None
        self._renew_at = 0.0

    def next_id(self) -> int:
        if self._generator is None or self._clock() >= self._renew_at:
            self._refresh()
        return self._generator.next_id()

    @property
    def slot(self) -> int:
        if self._generator is None:
            self._refresh()
        return self._generator.slot

    def _refresh(self) -> None:
        with self._lock:
            if self._generator is not None and self._clock() < self._renew_at:
                return
            if self._generator is None or not self._slots.renew(self._generator.slot):
                self._generator = SnowflakeGenerator(self._slots.acquire(), clock=self._clock)
            self._renew_at = self._clock() + RENEW_AFTER_SECONDS

    def release(self) -> None:
        """Give the slot back (on clean shutdown) so short-lived processes do not exhaust the slots."""
        if self._generator is not None:
            self._slots.release()
            self._generator = None
