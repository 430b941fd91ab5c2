"""Snowflake ids with Discord's layout, their one parser, and the 10-day bucket arithmetic built on them.

Layout (most significant first): 42 bits of milliseconds since the Discord epoch, 5 bits worker id,
5 bits process id, 12 bits increment. The worker/process pair is one 10-bit *slot* leased per process
(see ``app.id_slots``) so that ids are unique across every process sharing a database.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Any

DISCORD_EPOCH_MS = 1420070400000
BUCKET_SIZE_MS = 10 * 24 * 60 * 60 * 1000
MAX_SNOWFLAKE = 2**63 - 1
SLOT_COUNT = 1 << 10
_INCREMENT_BITS = 12
_MAX_INCREMENT = (1 << _INCREMENT_BITS) - 1
#: Enough for any 64-bit value, leading zeros allowed; longer text is refused before ``int`` reads it, since
#: Python refuses (and spends time on) digit strings of thousands of characters.
_MAX_DIGITS = 20


class InvalidSnowflake(ValueError):
    """A value that is no snowflake; ``value`` is what was given, for the caller's message."""

    def __init__(self, value: Any):
        super().__init__("not a snowflake")
        self.value = value


def parse_snowflake(value: Any) -> int:
    """A snowflake from its decimal string (Discord's form) or an integer (as discord.py sends some):
    ASCII digits only, in [0, MAX_SNOWFLAKE]. Anything else, booleans included, raises InvalidSnowflake."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= _MAX_DIGITS:
        number = int(value)
    else:
        raise InvalidSnowflake(value)
    if not 0 <= number <= MAX_SNOWFLAKE:
        raise InvalidSnowflake(value)
    return number


def snowflake_ms(snowflake: int) -> int:
    """Unix milliseconds embedded in a snowflake."""
    return (snowflake >> 22) + DISCORD_EPOCH_MS


def snowflake_time(snowflake: int) -> datetime:
    return datetime.fromtimestamp(snowflake_ms(snowflake) / 1000, tz=timezone.utc)


def snowflake_from_ms(unix_ms: int, high: bool = False) -> int:
    """The lowest (or highest) snowflake of a millisecond, for use as a cursor."""
    base = max(unix_ms - DISCORD_EPOCH_MS, 0) << 22
    return base + ((1 << 22) - 1 if high else 0)


def bucket_of(snowflake: int) -> int:
    """The 10-day partition bucket a snowflake falls in."""
    return (snowflake >> 22) // BUCKET_SIZE_MS


def bucket_bounds(bucket: int) -> tuple[int, int]:
    """The inclusive (lowest, highest) snowflakes of a bucket."""
    start_ms = bucket * BUCKET_SIZE_MS
    return start_ms << 22, ((start_ms + BUCKET_SIZE_MS) << 22) - 1


class SnowflakeGenerator:
    """Mints strictly increasing snowflakes for one process slot.

    When the wall clock steps backwards the generator keeps counting from the last millisecond it used
    instead of waiting or repeating: ids stay unique and increasing, and their embedded time catches up
    with the clock once it has passed the old high-water mark.
    """

    def __init__(self, slot: int, clock=time.time):
        if not 0 <= slot < SLOT_COUNT:
            raise ValueError(f"slot must be in [0, {SLOT_COUNT}), got {slot}")
        self.slot = slot
        self._clock = clock
        self._lock = threading.Lock()
        self._last_ms = -1
        self._increment = 0

    def next_id(self) -> int:
        with self._lock:
            now_ms = int(self._clock() * 1000) - DISCORD_EPOCH_MS
            if now_ms > self._last_ms:
                self._last_ms, self._increment = now_ms, 0
            elif self._increment < _MAX_INCREMENT:
                self._increment += 1
            else:
                self._last_ms, self._increment = self._last_ms + 1, 0
            return (self._last_ms << 22) | (self.slot << _INCREMENT_BITS) | self._increment
