"""Dual writes for moving messages from one store to another while the service runs.

Every write goes to the primary first (the client's answer depends on it), is then recorded in the write log
(a SQL table shared by every process), then goes to the secondary. Reads come from the primary.

Repair is by state, not by replaying operations: :func:`sync_message` copies the primary's *current* state of
a message (or its absence) to the secondary. That is idempotent and independent of order, so it is safe to
run for any message at any time, by the dual store, the backfill and ``verify --repair`` alike.

The log entry's version grows with every write; a writer clears ``pending`` only if nobody wrote the same
message after it touched the entry, else it leaves the entry pending, so concurrent writers that reach the
secondary in a different order than the primary are repaired rather than silently diverging.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone

from sqlalchemy import Engine, select, update

from app.messages.base import EDITABLE_FIELDS, Message, MessageStore, ReactionCount, StoreUnavailable
from app.messages.sql import _UPSERT_INSERTS, UNAVAILABLE_ERRORS
from models import DualWriteEntry

log = logging.getLogger(__name__)
entries = DualWriteEntry.__table__

#: The log key for a whole-channel operation (no message has id 0).
CHANNEL_KEY = 0
REPLAY_INTERVAL_SECONDS = 2.0
REPLAY_BATCH = 100
_PAGE = 1000


class WriteLog:
    """Which messages were written through dual writes, and which the secondary may still lack."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._insert = _UPSERT_INSERTS[engine.dialect.name]

    def _run(self, work: Callable):
        try:
            with self.engine.begin() as connection:
                return work(connection)
        except UNAVAILABLE_ERRORS as error:
            raise StoreUnavailable("write log unavailable") from error

    def touch(self, channel_id: int, message_ids: Iterable[int]) -> dict[int, int]:
        """Mark messages pending and return their new versions."""
        now = datetime.now(timezone.utc)

        def work(connection):
            versions = {}
            for message_id in sorted(set(message_ids)):
                statement = self._insert(entries).values(
                    channel_id=channel_id, message_id=message_id, version=1, pending=True, updated_at=now)
                statement = statement.on_conflict_do_update(
                    index_elements=[entries.c.channel_id, entries.c.message_id],
                    set_={"version": entries.c.version + 1, "pending": True, "updated_at": now},
                ).returning(entries.c.version)
                versions[message_id] = connection.execute(statement).scalar_one()
            return versions
        return self._run(work)

    def settle(self, channel_id: int, versions: dict[int, int]) -> None:
        """Clear ``pending`` for entries nobody touched since ``versions`` were handed out."""
        def work(connection):
            for message_id, version in versions.items():
                connection.execute(update(entries).where(
                    entries.c.channel_id == channel_id, entries.c.message_id == message_id,
                    entries.c.version == version).values(pending=False))
        self._run(work)

    def versions_between(self, channel_id: int, lowest: int, highest: int) -> dict[int, int]:
        """Versions of the channel's entries with ``lowest <= message_id <= highest``, and of the channel's own."""
        return self._run(lambda connection: dict(connection.execute(
            select(entries.c.message_id, entries.c.version).where(
                entries.c.channel_id == channel_id,
                (entries.c.message_id == CHANNEL_KEY)
                | entries.c.message_id.between(lowest, highest))).all()))

    def pending(self, limit: int) -> list[tuple[int, int, int]]:
        """Up to ``limit`` pending entries as (channel_id, message_id, version), oldest first."""
        return self._run(lambda connection: [tuple(row) for row in connection.execute(
            select(entries.c.channel_id, entries.c.message_id, entries.c.version)
            .where(entries.c.pending.is_(True)).order_by(entries.c.updated_at).limit(limit)).all()])


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
    """Copy the source's current state of one message (or of a deleted channel) to the target."""
    if message_id == CHANNEL_KEY:
        if not source.channel_buckets(channel_id):
            target.delete_channel(channel_id)
        return
    message = source.get_message(channel_id, message_id)
    if message is None:
        target.delete_messages(channel_id, [message_id])
        return
    copy_message(source, target, message, target_has_it=target.get_message(channel_id, message_id) is not None)


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

    def _mirror(self, channel_id: int, message_ids: Sequence[int], apply: Callable[[MessageStore], object]) -> None:
        """Record a write the primary has made, then make it on the secondary."""
        try:
            versions = self.write_log.touch(channel_id, message_ids)
        except StoreUnavailable:
            versions = None
        try:
            apply(self.secondary)
        except StoreUnavailable as error:
            if versions is None:
                # Neither the log nor the secondary has the write: only `verify --repair` can find it now.
                log.error("dual write lost for channel %s; run flask messages verify --repair", channel_id)
                return
            log.warning("secondary store write failed, kept for replay: %s", error)
            self._next_replay = self._clock() + REPLAY_INTERVAL_SECONDS
            return
        if versions is None:
            # The secondary has the write even though the log could not record it; a backfill racing it is
            # not told, so say so (verify finds any such message).
            log.warning("dual write log unavailable for channel %s; the secondary was written", channel_id)
            return
        self._settle(channel_id, versions)
        if self._next_replay and self._clock() >= self._next_replay:
            self.replay_pending(REPLAY_BATCH)

    def _settle(self, channel_id: int, versions: dict[int, int]) -> None:
        try:
            self.write_log.settle(channel_id, versions)
        except StoreUnavailable:
            log.warning("could not settle dual write log entries for channel %s; they stay pending", channel_id)

    def replay_pending(self, limit: int = REPLAY_BATCH) -> int:
        """Sync up to ``limit`` pending entries to the secondary; returns how many were synced."""
        synced = 0
        try:
            for channel_id, message_id, version in self.write_log.pending(limit):
                sync_message(self.primary, self.secondary, channel_id, message_id)
                self._settle(channel_id, {message_id: version})
                synced += 1
        except StoreUnavailable as error:
            log.warning("replay stopped, will retry: %s", error)
            self._next_replay = self._clock() + REPLAY_INTERVAL_SECONDS
            return synced
        self._next_replay = 0.0 if synced < limit else self._clock()
        return synced

    # -- writes ---------------------------------------------------------------------------------------------

    def create_message(self, message: Message) -> None:
        self.primary.create_message(message)
        self._mirror(message.channel_id, [message.id], lambda store: store.create_message(message))

    def update_message(self, channel_id: int, message_id: int, changes: dict) -> Message | None:
        updated = self.primary.update_message(channel_id, message_id, changes)
        if updated is not None:
            # A secondary that lacks the message yet writes nothing; the backfill copies the edited state.
            self._mirror(channel_id, [message_id], lambda store: store.update_message(channel_id, message_id, changes))
        return updated

    def delete_messages(self, channel_id: int, message_ids: Sequence[int]) -> None:
        self.primary.delete_messages(channel_id, message_ids)
        self._mirror(channel_id, message_ids, lambda store: store.delete_messages(channel_id, message_ids))

    def delete_channel(self, channel_id: int) -> None:
        self.primary.delete_channel(channel_id)
        self._mirror(channel_id, [CHANNEL_KEY], lambda store: store.delete_channel(channel_id))

    def add_reaction(self, channel_id: int, message_id: int, emoji: str, user_id: int) -> None:
        self.primary.add_reaction(channel_id, message_id, emoji, user_id)
        self._mirror(channel_id, [message_id], lambda s: s.add_reaction(channel_id, message_id, emoji, user_id))

    def remove_reaction(self, channel_id: int, message_id: int, emoji: str, user_id: int) -> None:
        self.primary.remove_reaction(channel_id, message_id, emoji, user_id)
        self._mirror(channel_id, [message_id], lambda s: s.remove_reaction(channel_id, message_id, emoji, user_id))

    def remove_emoji(self, channel_id: int, message_id: int, emoji: str) -> None:
        self.primary.remove_emoji(channel_id, message_id, emoji)
        self._mirror(channel_id, [message_id], lambda s: s.remove_emoji(channel_id, message_id, emoji))

    def clear_reactions(self, channel_id: int, message_id: int) -> None:
        self.primary.clear_reactions(channel_id, message_id)
        self._mirror(channel_id, [message_id], lambda s: s.clear_reactions(channel_id, message_id))

    def pin_message(self, channel_id: int, message_id: int, pinned_at: datetime) -> None:
        self.primary.pin_message(channel_id, message_id, pinned_at)
        self._mirror(channel_id, [message_id], lambda s: s.pin_message(channel_id, message_id, pinned_at))

    def unpin_message(self, channel_id: int, message_id: int) -> None:
        self.primary.unpin_message(channel_id, message_id)
        self._mirror(channel_id, [message_id], lambda s: s.unpin_message(channel_id, message_id))

    def claim_nonce(self, channel_id: int, author_id: int, nonce: str, message_id: int,
                    ttl_seconds: int) -> int | None:
        # Nonces are short-lived de-duplication state of the store that serves reads; they are not copied.
        return self.primary.claim_nonce(channel_id, author_id, nonce, message_id, ttl_seconds)

    # -- reads: the primary ---------------------------------------------------------------------------------

    def get_message(self, channel_id: int, message_id: int) -> Message | None:
        return self.primary.get_message(channel_id, message_id)

    def get_messages(self, channel_id: int, message_ids: Iterable[int]) -> dict[int, Message]:
        return self.primary.get_messages(channel_id, message_ids)

    def list_messages(self, channel_id: int, *, before: int | None = None, after: int | None = None,
                      limit: int = 50) -> list[Message]:
        return self.primary.list_messages(channel_id, before=before, after=after, limit=limit)

    def channel_buckets(self, channel_id: int) -> list[int]:
        return self.primary.channel_buckets(channel_id)

    def _read_bucket(self, channel_id, bucket, *, after, before, limit, oldest_first) -> list[Message]:
        return self.primary._read_bucket(channel_id, bucket, after=after, before=before, limit=limit,
                                         oldest_first=oldest_first)

    def messages_in_bucket(self, channel_id: int, bucket: int) -> list[Message]:
        return self.primary.messages_in_bucket(channel_id, bucket)

    def reaction_users(self, channel_id: int, message_id: int, emoji: str, *, after: int | None,
                       limit: int) -> list[int]:
        return self.primary.reaction_users(channel_id, message_id, emoji, after=after, limit=limit)

    def reaction_counts(self, channel_id: int, message_ids: Sequence[int],
                        viewer_id: int) -> dict[int, list[ReactionCount]]:
        return self.primary.reaction_counts(channel_id, message_ids, viewer_id)

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

