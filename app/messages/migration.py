"""Moving messages between stores while the service runs: backfill and verification.

The backfill copies channel by channel (a bounded number at once) and bucket by bucket, newest bucket first and
oldest message first within a bucket, a page at a time, recording after each page how far it got in a SQLite
checkpoint file, so a killed run resumes at the page it was on.

Writes made meanwhile through dual writes win. Before reading a page the backfill notes the write-log entries of
the page's id range; after writing the page it marks pending, and resyncs from the source, every message that a
write began on meanwhile or was in flight for, so an edit is never overwritten by the older copy and a deleted
message is never resurrected. The checkpoint records the page being written, so a run killed between writing a
page and that check makes the resumed run do the check for it.
"""
from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import gevent
from gevent.pool import Pool

from app.ids import bucket_bounds
from app.messages.base import Message, MessageStore
from app.messages.dual import Entry, WriteLog, copy_message, mark_and_resync

PAGE_SIZE = 500


class Checkpoint:
    """Progress of a backfill in a SQLite file: per bucket, the highest id copied so far, whether it is done, and
    the highest id of a page being written (None between pages)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._connection = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute(
            "CREATE TABLE IF NOT EXISTS buckets (channel_id INTEGER, bucket INTEGER, cursor INTEGER, "
            "done INTEGER NOT NULL DEFAULT 0, copied INTEGER NOT NULL DEFAULT 0, writing INTEGER, "
            "PRIMARY KEY (channel_id, bucket))")
        self._connection.execute("CREATE TABLE IF NOT EXISTS channels (channel_id INTEGER PRIMARY KEY)")

    def channel_done(self, channel_id: int) -> bool:
        with self._lock:
            return self._connection.execute(
                "SELECT 1 FROM channels WHERE channel_id = ?", (channel_id,)).fetchone() is not None

    def finish_channel(self, channel_id: int) -> None:
        with self._lock:
            self._connection.execute("INSERT OR IGNORE INTO channels VALUES (?)", (channel_id,))

    def bucket(self, channel_id: int, bucket: int) -> tuple[int | None, bool, int | None]:
        """(highest id copied, done, highest id of the page being written) for a bucket; (None, False, None) when
        it was never started."""
        with self._lock:
            row = self._connection.execute(
                "SELECT cursor, done, writing FROM buckets WHERE channel_id = ? AND bucket = ?",
                (channel_id, bucket)).fetchone()
        return (row[0], bool(row[1]), row[2]) if row else (None, False, None)

    def writing(self, channel_id: int, bucket: int, highest: int) -> None:
        """Record that a page up to id ``highest`` is being written to the target."""
        with self._lock:
            self._connection.execute(
                "INSERT INTO buckets (channel_id, bucket, writing) VALUES (?, ?, ?) "
                "ON CONFLICT (channel_id, bucket) DO UPDATE SET writing = excluded.writing",
                (channel_id, bucket, highest))

    def advance(self, channel_id: int, bucket: int, cursor: int | None, copied: int, done: bool) -> None:
        with self._lock:
            self._connection.execute(
                "INSERT INTO buckets (channel_id, bucket, cursor, done, copied) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (channel_id, bucket) DO UPDATE SET cursor = excluded.cursor, done = excluded.done, "
                "copied = buckets.copied + excluded.copied, writing = NULL",
                (channel_id, bucket, cursor, int(done), copied))

    def copied(self) -> int:
        with self._lock:
            return self._connection.execute("SELECT COALESCE(SUM(copied), 0) FROM buckets").fetchone()[0]

    def close(self) -> None:
        self._connection.close()


class RateLimiter:
    """At most ``per_second`` units on average, shared by every greenlet of the backfill."""

    def __init__(self, per_second: float | None, clock: Callable[[], float] = time.monotonic):
        self.per_second = per_second
        self._clock = clock
        self._next_free = clock()

    def take(self, units: int) -> None:
        if not self.per_second:
            return
        now = self._clock()
        start = max(now, self._next_free)
        self._next_free = start + units / self.per_second
        if start > now:
            gevent.sleep(start - now)


@dataclass
class BackfillResult:
    copied: int = 0
    resynced: int = 0
    channels: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.copied / self.seconds if self.seconds else 0.0


class Backfill:
    def __init__(self, source: MessageStore, target: MessageStore, write_log: WriteLog, checkpoint: Checkpoint, *,
                 concurrency: int = 4, rate: float | None = None, dry_run: bool = False,
                 page_size: int = PAGE_SIZE, on_progress: Callable[[int], None] = lambda copied: None):
        self.source = source
        self.target = target
        self.write_log = write_log
        self.checkpoint = checkpoint
        self.concurrency = concurrency
        self.limiter = RateLimiter(rate)
        self.dry_run = dry_run
        self.page_size = page_size
        self.on_progress = on_progress
        self.result = BackfillResult()

    def remaining(self, channel_ids: Iterable[int]) -> int:
        """Messages still to copy (for a progress bar's total)."""
        total = 0
        for channel_id in channel_ids:
            if not self.checkpoint.channel_done(channel_id):
                total += self.source.count_messages(channel_id)
        return max(total - self.checkpoint.copied(), 0)

    def run(self, channel_ids: Sequence[int]) -> BackfillResult:
        started = time.monotonic()
        pool = Pool(self.concurrency)
        for channel_id in channel_ids:
            pool.spawn(self.copy_channel, channel_id)
        pool.join(raise_error=True)
        self.result.seconds = time.monotonic() - started
        return self.result

    def copy_channel(self, channel_id: int) -> None:
        if self.checkpoint.channel_done(channel_id):
            return
        pins = {pin.message_id: pin.pinned_at for pin in self.source.list_pins(channel_id, before=None, limit=1000)}
        for bucket in self.source.channel_buckets(channel_id):
            self.copy_bucket(channel_id, bucket, pins)
        if not self.dry_run:
            self.checkpoint.finish_channel(channel_id)
        self.result.channels += 1

    def copy_bucket(self, channel_id: int, bucket: int, pins: dict[int, datetime]) -> None:
        lowest, highest = bucket_bounds(bucket)
        cursor, done, killed_writing = self.checkpoint.bucket(channel_id, bucket)
        if killed_writing is not None and not self.dry_run:
            # A run was killed writing the page after ``cursor``: check it as that run would have.
            first = lowest if cursor is None else cursor + 1
            self._resync(channel_id, self.write_log.entries_between(channel_id, first, killed_writing))
        while not done:
            before_read = self.write_log.entries_between(channel_id, lowest, highest)
            # With both bounds a page is the messages right after ``after``: the walk goes oldest to newest.
            page = self.source.list_messages(channel_id, before=highest + 1,
                                             after=cursor if cursor is not None else lowest - 1, limit=self.page_size)
            if self.dry_run:
                self.result.copied += len(page)
                self.on_progress(len(page))
                if len(page) < self.page_size:
                    return
                cursor = page[0].id
                continue
            self.limiter.take(len(page))
            if page:
                self.checkpoint.writing(channel_id, bucket, page[0].id)
            page_ids = [m.id for m in page]
            # Only a message written through dual writes (it has a write-log entry) can be in the target before
            # the backfill copies it, so only those are looked up there.
            present = self.target.get_messages(channel_id, [i for i in page_ids if i in before_read])
            reacted = self.source.reaction_counts(channel_id, page_ids, 0)
            for message in page:
                copy_message(self.source, self.target, message, target_has_it=message.id in present, pins_at=pins,
                             has_reactions=message.id in reacted)
            after_write = self.write_log.entries_between(channel_id, lowest, highest)
            self._resync(channel_id, {message_id: entry for message_id, entry in after_write.items()
                                      if _raced(before_read.get(message_id), entry)})
            done = len(page) < self.page_size
            cursor = page[0].id if page else cursor
            self.checkpoint.advance(channel_id, bucket, cursor, len(page), done)
            self.result.copied += len(page)
            self.on_progress(len(page))

    def _resync(self, channel_id: int, raced: dict[int, Entry]) -> None:
        """The copy may have overtaken, or been overtaken by, dual writes of these messages: have them copied
        again from the source once no write of them is in flight."""
        if raced:
            mark_and_resync(self.write_log, self.source, self.target, channel_id, raced)
            self.result.resynced += len(raced)


def _raced(before_read: Entry | None, after_write: Entry) -> bool:
    """Whether a dual write of the message began after the page was read, or was in flight when it was."""
    return before_read is None or before_read.version != after_write.version or before_read.writers > 0


def _millis(moment: datetime | None) -> int | None:
    # Scylla keeps timestamps to the millisecond and SQL to the microsecond: compare what both can hold.
    return None if moment is None else int(moment.timestamp() * 1000)


def message_digest(message: Message, reactions: dict[str, int]) -> bytes:
    state = (message.id, message.author_id, message.content, message.type, message.flags, message.tts,
             message.mention_everyone, tuple(message.mentions), tuple(message.mention_roles), message.embeds_json,
             message.pinned, _millis(message.edited_at), message.reference_message_id,
             tuple(sorted(reactions.items())), message.attachments_json, message.components_json,
             message.webhook_id, message.webhook_username, message.webhook_avatar_url, message.guild_id)
    return hashlib.sha256(repr(state).encode()).digest()


@dataclass
class BucketDifference:
    channel_id: int
    bucket: int
    source_count: int
    target_count: int
    missing: list[int] = field(default_factory=list)
    extra: list[int] = field(default_factory=list)
    changed: list[int] = field(default_factory=list)

    def describe(self) -> str:
        return (f"channel {self.channel_id} bucket {self.bucket}: source {self.source_count}, target "
                f"{self.target_count}; missing {self.missing[:10]}, extra {self.extra[:10]}, "
                f"changed {self.changed[:10]}")


def _bucket_digests(store: MessageStore, channel_id: int, bucket: int) -> dict[int, bytes]:
    messages = store.messages_in_bucket(channel_id, bucket)
    counts = store.reaction_counts(channel_id, [m.id for m in messages], 0) if messages else {}
    return {m.id: message_digest(m, {r.emoji: r.count for r in counts.get(m.id, [])}) for m in messages}


def verify(source: MessageStore, target: MessageStore, channel_ids: Iterable[int]) -> list[BucketDifference]:
    """Compare every bucket of the channels: counts and content digests."""
    differences = []
    for channel_id in channel_ids:
        buckets = sorted(set(source.channel_buckets(channel_id)) | set(target.channel_buckets(channel_id)))
        for bucket in buckets:
            wanted = _bucket_digests(source, channel_id, bucket)
            present = _bucket_digests(target, channel_id, bucket)
            if wanted == present:
                continue
            differences.append(BucketDifference(
                channel_id, bucket, len(wanted), len(present),
                missing=sorted(set(wanted) - set(present)), extra=sorted(set(present) - set(wanted)),
                changed=sorted(i for i in set(wanted) & set(present) if wanted[i] != present[i])))
    return differences


def repair(source: MessageStore, target: MessageStore, write_log: WriteLog,
           differences: Iterable[BucketDifference]) -> int:
    """Copy the source's state over every difference; returns how many messages stay pending because a dual
    write of them is in flight (a later replay copies them)."""
    return sum(mark_and_resync(write_log, source, target, difference.channel_id,
                               difference.missing + difference.extra + difference.changed)
               for difference in differences)
