"""Dual writes for moving messages from one store to another while the service runs.

Every write is recorded in the write log (a SQL table shared by every process) before it goes to the primary,
then goes to the primary (the client's answer depends on it), then to the secondary, and is recorded again as
over. Reads come from the primary.

Repair is by state, not by replaying operations: :func:`resync` copies the primary's *current* state of a
message (or its absence) to the secondary. That is idempotent and independent of order, so the dual store's
replay, the backfill and ``verify --repair`` all use it.

Writes of one message can reach the secondary in another order than they reached the primary, and a copy of the
whole state can be overtaken by a write that was still on its way. The log is built so that neither goes
unnoticed: an entry's ``version`` grows with every write, ``synced_version`` is the version the secondary holds,
and ``writers`` counts writes begun and not yet over.

- A write may mark the secondary as holding its version only if nobody began a write of the message after it
  and the secondary held the version before it (so every earlier write had reached the secondary and ended
  before this one began).
- A copy of the whole state (``claim``/``release``) starts only when no write of the message is in flight, and
  marks the secondary as holding the version it claimed only if nobody began a write meanwhile.

Anything else leaves the entry pending, and a later replay copies it once nothing is in flight.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import NamedTuple, TypeVar

from sqlalchemy import Engine, case, false, func, select, update

from app.messages.base import EDITABLE_FIELDS, Message, MessageRef, MessageStore, ReactionCount, StoreUnavailable
from app.messages.dual_tables import DualWriteEntry
from app.messages.sql import _UPSERT_INSERTS
from models.base import DATABASE_UNAVAILABLE

log = logging.getLogger(__name__)
entries = DualWriteEntry.__table__
Result = TypeVar("Result")

#: The log key for a whole-channel operation (no message has id 0).
CHANNEL_KEY = 0
REPLAY_INTERVAL_SECONDS = 2.0
REPLAY_BATCH = 100
_PAGE = 1000


class Entry(NamedTuple):
    version: int
    writers: int


class WriteLog:
    """Which messages were written through dual writes, which writes are in flight, and which the secondary may
    still lack."""

    def __init__(self, engine: Engine, *, stale_writer_seconds: float,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.engine = engine
        self._insert = _UPSERT_INSERTS[engine.dialect.name]
        self._clock = clock
        # A write still counted as in flight this long after it began belongs to a process that died
        # (DUAL_STALE_WRITER_SECONDS): every store and database call of a live write has timed out by then.
        self._stale_after = timedelta(seconds=stale_writer_seconds)

    def _run(self, work: Callable):
        try:
            with self.engine.begin() as connection:
                return work(connection)
        except DATABASE_UNAVAILABLE as error:
            raise StoreUnavailable("write log unavailable") from error

    def _bump(self, channel_id: int, message_ids: Iterable[int], *, writers: int) -> dict[int, int]:
        now = self._clock()

        def work(connection):
            versions = {}
            for message_id in sorted(set(message_ids)):
                statement = self._insert(entries).values(
                    channel_id=channel_id, message_id=message_id, version=1, synced_version=0, writers=writers,
                    pending=True, updated_at=now)
                statement = statement.on_conflict_do_update(
                    index_elements=[entries.c.channel_id, entries.c.message_id],
                    set_={"version": entries.c.version + 1, "writers": entries.c.writers + writers,
                          "pending": True, "updated_at": now},
                ).returning(entries.c.version)
                versions[message_id] = connection.execute(statement).scalar_one()
            return versions
        return self._run(work)

    def begin(self, channel_id: int, message_ids: Iterable[int]) -> dict[int, int]:
        """Record that a write of these messages starts; return the version each write has."""
        return self._bump(channel_id, message_ids, writers=1)

    def mark(self, channel_id: int, message_ids: Iterable[int]) -> None:
        """Record that the secondary may not hold the primary's state of these messages, whatever it held."""
        self._bump(channel_id, message_ids, writers=0)

    def _end(self, channel_id: int, ends: Sequence[tuple[int, int, object]]) -> set[int]:
        """One writer fewer for each (message_id, version, holds); the secondary holds ``version`` where the
        condition ``holds`` is true. Returns the messages now settled."""
        def work(connection):
            settled = set()
            for message_id, version, holds in ends:
                statement = update(entries).where(
                    entries.c.channel_id == channel_id, entries.c.message_id == message_id,
                ).values(
                    writers=case((entries.c.writers > 0, entries.c.writers - 1), else_=0),
                    synced_version=case((holds, version), else_=entries.c.synced_version),
                    pending=case((holds, false()), else_=entries.c.pending),
                ).returning(entries.c.pending)
                still_pending = connection.execute(statement).scalar_one_or_none()
                if still_pending is not None and not still_pending:
                    settled.add(message_id)
            return settled
        return self._run(work)

    def end(self, channel_id: int, versions: dict[int, int], *, reached_secondary: bool) -> list[int]:
        """A write begun with :meth:`begin` is over; return the messages it leaves pending."""
        settled = self._end(channel_id, [
            (message_id, version,
             ((entries.c.version == version) & (entries.c.synced_version == version - 1))
             if reached_secondary else false())
            for message_id, version in versions.items()])
        return [message_id for message_id in versions if message_id not in settled]

    def claim(self, channel_id: int, message_id: int) -> int | None:
        """Start copying the whole state of a pending message: its version, or None while a write of it is in
        flight (or it is settled)."""
        now = self._clock()
        statement = update(entries).where(
            entries.c.channel_id == channel_id, entries.c.message_id == message_id, entries.c.pending.is_(True),
            (entries.c.writers == 0) | (entries.c.updated_at < now - self._stale_after),
        ).values(version=entries.c.version + 1, writers=1, updated_at=now).returning(entries.c.version)
        return self._run(lambda connection: connection.execute(statement).scalar_one_or_none())

    def release(self, channel_id: int, message_id: int, version: int, *, copied: bool) -> bool:
        """A claim is over; True if the secondary now holds the claimed version (nobody wrote meanwhile)."""
        holds = (entries.c.version == version) if copied else false()
        return message_id in self._end(channel_id, [(message_id, version, holds)])

    def entries_between(self, channel_id: int, lowest: int, highest: int) -> dict[int, Entry]:
        """The channel's entries with ``lowest <= message_id <= highest``, and the channel's own."""
        return self._run(lambda connection: {
            message_id: Entry(version, writers) for message_id, version, writers in connection.execute(
                select(entries.c.message_id, entries.c.version, entries.c.writers).where(
                    entries.c.channel_id == channel_id,
                    (entries.c.message_id == CHANNEL_KEY) | entries.c.message_id.between(lowest, highest)))})

    def ready(self, limit: int) -> list[tuple[int, int]]:
        """Up to ``limit`` pending entries with no write in flight, as (channel_id, message_id), oldest first."""
        stale = self._clock() - self._stale_after
        return self._run(lambda connection: [tuple(row) for row in connection.execute(
            select(entries.c.channel_id, entries.c.message_id)
            .where(entries.c.pending.is_(True), (entries.c.writers == 0) | (entries.c.updated_at < stale))
            .order_by(entries.c.updated_at).limit(limit)).all()])

    def pending_count(self) -> int:
        """Entries whose secondary may be behind, writes in flight included."""
        return self._run(lambda connection: connection.execute(
            select(func.count()).select_from(entries).where(entries.c.pending.is_(True))).scalar_one())


def _reaction_state(store: MessageStore, channel_id: int, message_id: int) -> dict[str, set[int]]:
    state: dict[str, set[int]] = {}
    for reaction in store.reaction_counts(channel_id, [message_id], 0).get(message_id, []):
        users: set[int] = set()
        after = None
        while True:
            page = store.reaction_users(channel_id, message_id, reaction.emoji, after=after, limit=_PAGE)
            users.update(page)
            if len(page) < _PAGE:
                break
            after = page[-1]
        state[reaction.emoji] = users
    return state


def pinned_at(store: MessageStore, channel_id: int, message_id: int) -> datetime | None:
    for pin in store.list_pins(channel_id, before=None, limit=_PAGE):
        if pin.message_id == message_id:
            return pin.pinned_at
    return None


def copy_message(source: MessageStore, target: MessageStore, message: Message, *, target_has_it: bool,
                 pins_at: dict[int, datetime] | None = None, has_reactions: bool = True) -> None:
    """Make ``target`` hold ``message`` exactly as it is, with the source's reactions and pin.

    ``has_reactions=False`` says the caller already knows the source message has none (a backfill reads
    reactions a page at a time), which saves a query per message.
    """
    channel_id, message_id = message.channel_id, message.id
    if target_has_it:
        # An update writes every editable field, so values that went back to their default (a flag cleared,
        # say) are written too; a create may skip defaults.
        target.update_message(channel_id, message_id, {f: getattr(message, f) for f in EDITABLE_FIELDS})
    else:
        target.create_message(message)
    wanted = _reaction_state(source, channel_id, message_id) if has_reactions else {}
    present = _reaction_state(target, channel_id, message_id) if target_has_it else {}
    if wanted != present:
        if present:
            target.clear_reactions(channel_id, message_id)
        for emoji, users in wanted.items():
            for user_id in sorted(users):
                target.add_reaction(channel_id, message_id, emoji, user_id)
    if message.pinned:
        moment = (pins_at or {}).get(message_id) or pinned_at(source, channel_id, message_id)
        target.pin_message(channel_id, message_id, moment or datetime.now(timezone.utc))
    elif target_has_it:
        target.unpin_message(channel_id, message_id)


def sync_message(source: MessageStore, target: MessageStore, channel_id: int, message_id: int) -> None:
    """Copy the source's current state of one message (or of a deleted channel) to the target.

    Unguarded: a write still on its way to the target can overtake it. Go through :func:`resync`.
    """
    if message_id == CHANNEL_KEY:
        if not source.channel_buckets(channel_id):
            target.delete_channel(channel_id)
        return
    message = source.get_message(channel_id, message_id)
    if message is None:
        target.delete_messages(channel_id, [message_id])
        return
    copy_message(source, target, message, target_has_it=target.get_message(channel_id, message_id) is not None)


def resync(write_log: WriteLog, source: MessageStore, target: MessageStore, channel_id: int,
           message_id: int) -> bool:
    """Copy the source's state of a pending message to the target unless a write of it is in flight.

    True if the target now holds it; False leaves the entry pending for a later replay.
    """
    version = write_log.claim(channel_id, message_id)
    if version is None:
        return False
    copied = False
    try:
        sync_message(source, target, channel_id, message_id)
        copied = True
    finally:
        settled = write_log.release(channel_id, message_id, version, copied=copied)
    return settled


def mark_and_resync(write_log: WriteLog, source: MessageStore, target: MessageStore, channel_id: int,
                    message_ids: Iterable[int]) -> int:
    """Mark messages pending whatever the log said of them, and resync each; returns how many stay pending
    because a write of them is in flight (a later replay copies them)."""
    message_ids = list(message_ids)
    write_log.mark(channel_id, message_ids)
    return sum(not resync(write_log, source, target, channel_id, message_id) for message_id in message_ids)


class Replayed(NamedTuple):
    settled: int
    #: Entries that a write began on while they were being copied; they stay pending.
    overtaken: int


def replay(write_log: WriteLog, source: MessageStore, target: MessageStore, limit: int) -> Replayed:
    """Resync up to ``limit`` pending entries that no write is in flight for."""
    outcomes = [resync(write_log, source, target, channel_id, message_id)
                for channel_id, message_id in write_log.ready(limit)]
    return Replayed(sum(outcomes), len(outcomes) - sum(outcomes))


class DualMessageStore(MessageStore):
    """Writes to both stores, reads from the primary; the secondary catches up through the write log."""

    def __init__(self, primary: MessageStore, secondary: MessageStore, write_log: WriteLog,
                 clock: Callable[[], float] = time.monotonic):
        self.primary = primary
        self.secondary = secondary
        self.write_log = write_log
        self.backend = f"dual({primary.backend}>{secondary.backend})"
        self._clock = clock
        self._next_replay = 0.0

    def _write(self, channel_id: int, message_ids: Sequence[int], write: Callable[[MessageStore], Result],
               *, mirror: Callable[[Result], bool] = lambda result: True) -> Result:
        """Make a write on the primary, then on the secondary, recorded in the write log around both.

        ``mirror`` says from the primary's answer whether the secondary needs the write at all.
        """
        try:
            versions = self.write_log.begin(channel_id, message_ids)
        except StoreUnavailable:
            versions = None
        reached_secondary = False
        try:
            result = write(self.primary)
            reached_secondary = (not mirror(result)
                                 or self._write_secondary(channel_id, write, logged=versions is not None))
        finally:
            if versions is not None:
                self._end(channel_id, versions, reached_secondary)
        if self._next_replay and self._clock() >= self._next_replay:
            self.replay_pending(REPLAY_BATCH)
        return result

    def _write_secondary(self, channel_id: int, write: Callable[[MessageStore], object], *, logged: bool) -> bool:
        try:
            write(self.secondary)
        except StoreUnavailable as error:
            if logged:
                log.warning("secondary store write failed, kept for replay: %s", error)
            else:
                # Neither the log nor the secondary has the write: only `verify --repair` can find it now.
                log.error("dual write lost for channel %s; run flask messages verify --repair", channel_id)
            return False
        if not logged:
            # The secondary has the write even though the log could not record it; a backfill racing it is
            # not told, so say so (verify finds any such message).
            log.warning("dual write log unavailable for channel %s; the secondary was written", channel_id)
        return True

    def _end(self, channel_id: int, versions: dict[int, int], reached_secondary: bool) -> None:
        try:
            left_pending = self.write_log.end(channel_id, versions, reached_secondary=reached_secondary)
        except StoreUnavailable:
            log.warning("could not end dual write log entries for channel %s; they stay pending", channel_id)
            left_pending = list(versions)
        if left_pending and not self._next_replay:
            self._next_replay = self._clock() + REPLAY_INTERVAL_SECONDS

    def replay_pending(self, limit: int = REPLAY_BATCH) -> int:
        """Resync up to ``limit`` pending entries to the secondary; returns how many it settled."""
        try:
            settled, overtaken = replay(self.write_log, self.primary, self.secondary, limit)
        except StoreUnavailable as error:
            log.warning("replay stopped, will retry: %s", error)
            self._next_replay = self._clock() + REPLAY_INTERVAL_SECONDS
            return 0
        if settled + overtaken == limit:
            self._next_replay = self._clock()
        elif overtaken:
            self._next_replay = self._clock() + REPLAY_INTERVAL_SECONDS
        else:
            self._next_replay = 0.0
        return settled

    # -- writes ---------------------------------------------------------------------------------------------

    def create_message(self, message: Message) -> None:
        self._write(message.channel_id, [message.id], lambda store: store.create_message(message))

    def update_message(self, channel_id: int, message_id: int, changes: dict) -> Message | None:
        # A primary without the message changed nothing; a secondary without it yet writes nothing either, and
        # the backfill copies the edited state.
        return self._write(channel_id, [message_id],
                           lambda store: store.update_message(channel_id, message_id, changes),
                           mirror=lambda updated: updated is not None)

    def delete_messages(self, channel_id: int, message_ids: Sequence[int]) -> None:
        self._write(channel_id, message_ids, lambda store: store.delete_messages(channel_id, message_ids))

    def delete_channel(self, channel_id: int) -> None:
        self._write(channel_id, [CHANNEL_KEY], lambda store: store.delete_channel(channel_id))

    def add_reaction(self, channel_id: int, message_id: int, emoji: str, user_id: int) -> None:
        self._write(channel_id, [message_id], lambda s: s.add_reaction(channel_id, message_id, emoji, user_id))

    def remove_reaction(self, channel_id: int, message_id: int, emoji: str, user_id: int) -> None:
        self._write(channel_id, [message_id], lambda s: s.remove_reaction(channel_id, message_id, emoji, user_id))

    def remove_emoji(self, channel_id: int, message_id: int, emoji: str) -> None:
        self._write(channel_id, [message_id], lambda s: s.remove_emoji(channel_id, message_id, emoji))

    def clear_reactions(self, channel_id: int, message_id: int) -> None:
        self._write(channel_id, [message_id], lambda s: s.clear_reactions(channel_id, message_id))

    def pin_message(self, channel_id: int, message_id: int, pinned_at: datetime) -> None:
        self._write(channel_id, [message_id], lambda s: s.pin_message(channel_id, message_id, pinned_at))

    def unpin_message(self, channel_id: int, message_id: int) -> None:
        self._write(channel_id, [message_id], lambda s: s.unpin_message(channel_id, message_id))

    def claim_nonce(self, channel_id: int, author_id: int, nonce: str, message_id: int,
                    ttl_seconds: int) -> int | None:
        # Nonces are short-lived de-duplication state of the store that serves reads; they are not copied.
        return self.primary.claim_nonce(channel_id, author_id, nonce, message_id, ttl_seconds)

    # -- reads: the primary ---------------------------------------------------------------------------------

    def get_message(self, channel_id: int, message_id: int) -> Message | None:
        return self.primary.get_message(channel_id, message_id)

    def get_messages(self, channel_id: int, message_ids: Iterable[int]) -> dict[int, Message]:
        return self.primary.get_messages(channel_id, message_ids)

    def get_messages_by_key(self, keys: Iterable[tuple[int, int]]) -> dict[int, Message]:
        return self.primary.get_messages_by_key(keys)

    def list_messages(self, channel_id: int, *, before: int | None = None, after: int | None = None,
                      limit: int = 50) -> list[Message]:
        return self.primary.list_messages(channel_id, before=before, after=after, limit=limit)

    def channel_buckets(self, channel_id: int) -> list[int]:
        return self.primary.channel_buckets(channel_id)

    def _read_bucket(self, channel_id, bucket, *, after, before, limit, oldest_first) -> list[Message]:
        return self.primary._read_bucket(channel_id, bucket, after=after, before=before, limit=limit,
                                         oldest_first=oldest_first)

    def messages_by_author(self, guild_id: int, author_id: int, *, after: int | None, before: int | None,
                           limit: int) -> list[MessageRef]:
        # Each store keeps its own index with the messages it writes, so the secondary's is complete too.
        return self.primary.messages_by_author(guild_id, author_id, after=after, before=before, limit=limit)

    def index_authors(self, channel_id: int, guild_id: int, *, since: int) -> int:
        # Each store keeps its own index: both are completed (each is idempotent; a rerun finishes either).
        return (self.primary.index_authors(channel_id, guild_id, since=since)
                + self.secondary.index_authors(channel_id, guild_id, since=since))

    def messages_in_bucket(self, channel_id: int, bucket: int) -> list[Message]:
        return self.primary.messages_in_bucket(channel_id, bucket)

    def reaction_users(self, channel_id: int, message_id: int, emoji: str, *, after: int | None,
                       limit: int) -> list[int]:
        return self.primary.reaction_users(channel_id, message_id, emoji, after=after, limit=limit)

    def reaction_counts(self, channel_id: int, message_ids: Sequence[int],
                        viewer_id: int) -> dict[int, list[ReactionCount]]:
        return self.primary.reaction_counts(channel_id, message_ids, viewer_id)

    def reaction_counts_by_key(self, keys: Iterable[tuple[int, int]],
                               viewer_id: int) -> dict[int, list[ReactionCount]]:
        return self.primary.reaction_counts_by_key(keys, viewer_id)

    def list_pins(self, channel_id: int, *, before: datetime | None, limit: int):
        return self.primary.list_pins(channel_id, before=before, limit=limit)

    def count_pins(self, channel_id: int) -> int:
        return self.primary.count_pins(channel_id)

    def ping(self) -> None:
        self.primary.ping()
        self.secondary.ping()

    def close(self) -> None:
        self.primary.close()
        self.secondary.close()

