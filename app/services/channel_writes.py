"""The one path by which writes reach a channel's messages: the write, the channel's bookkeeping, its events."""
from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from typing import TypeVar

from sqlalchemy import LargeBinary, TextClause, bindparam, case, or_, select, text, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from app.events import outbox
from app.events.base import Event
from app.messages.base import MessageStore, StoreUnavailable
from models import Channel
from models.base import DATABASE_UNAVAILABLE, READ_ONLY, UTCDateTime, commits_by_statement, shared_transaction

log = logging.getLogger(__name__)
Result = TypeVar("Result")

_BUMP_VERSION = (update(Channel).where(Channel.id == bindparam("channel_id"))
                 .values(messages_version=Channel.messages_version + 1))
_BUMP_AND_ADVANCE = _BUMP_VERSION.values(last_message_id=case(
    (or_(Channel.last_message_id.is_(None), Channel.last_message_id < bindparam("created")), bindparam("created")),
    else_=Channel.last_message_id))
_REPLACE_LAST = (update(Channel).where(Channel.id == bindparam("channel_id"),
                                       Channel.last_message_id == bindparam("deleted_last"))
                 .values(last_message_id=bindparam("replacement")))
_LAST_MESSAGE_ID = select(Channel.last_message_id).where(Channel.id == bindparam("channel_id"))

#: PostgreSQL: the bookkeeping, the outbox row of one event and the COMMIT, sent as one query (one round trip):
#: the channel's row is locked only while the server runs them. GREATEST ignores NULL, as _BUMP_AND_ADVANCE does.
_PG_BUMP = f"UPDATE {Channel.__tablename__} SET messages_version = messages_version + 1 WHERE id = :channel_id"
_PG_BUMP_AND_ADVANCE = (f"UPDATE {Channel.__tablename__} SET messages_version = messages_version + 1, "
                        "last_message_id = GREATEST(last_message_id, :created) WHERE id = :channel_id")
_PG_OUTBOX_ROW = (f"INSERT INTO {outbox.event_outbox.name} (payload, created_at, unconfirmed) "
                  "VALUES (:payload, :created_at, :unconfirmed)")


def _pg_commit(bump: str, *, with_event: bool) -> TextClause:
    statements = [bump, _PG_OUTBOX_ROW] if with_event else [bump]
    return text("; ".join([*statements, "COMMIT"])).bindparams(
        *([bindparam("payload", type_=LargeBinary), bindparam("created_at", type_=UTCDateTime),
           bindparam("unconfirmed", type_=LargeBinary)] if with_event else []))


_PG_COMMITS = {(advance, with_event): _pg_commit(_PG_BUMP_AND_ADVANCE if advance else _PG_BUMP, with_event=with_event)
               for advance in (False, True) for with_event in (False, True)}


def no_events(_result) -> Sequence[Event]:
    return ()


class ChannelWrites:
    """Every write to a channel's messages goes through :meth:`apply`. With it, in one transaction of the
    metadata database, the channel records what the write did and the write's events enter the outbox:

    - ``messages_version`` grows: how every worker's read cache learns that the channel changed
      (app/read_cache.py).
    - ``last_message_id`` moves up to a message created, or, when the message it names is deleted, back to the
      newest one left.
    - the events (``app.services.dispatch``) are appended to the outbox (``app.events.outbox``), from which the
      relay publishes them: an event exists exactly when its write committed.

    When the store shares the metadata database (the SQL store), the write itself is part of that transaction,
    so the message, the bookkeeping and the events commit together or not at all, and a failed write leaves no
    trace. The channel's row is locked by the bookkeeping, after the write and before the events enter the
    outbox, so one channel's events enter the outbox in the order their writes commit. It is locked last, and on
    PostgreSQL the lock, the outbox row and the COMMIT go to the server as one query: writers into one busy
    channel queue on its row only while the server runs them, never while a worker busy with other requests
    gets round to committing (they did when the row was locked first: one channel's writes collapsed with
    concurrency, docs/measurements.md). The BEGIN and the store's writes whose results nothing reads (a
    create's, a reaction's, an unpin's) go in that query too (``models.base.execute_later``): such a write is one
    round trip.

    Otherwise (ScyllaDB, the dual store) the write comes first and the transaction after it. A write that fails
    may still have landed (a timeout): the transaction still moves ``messages_version``, so that pages kept of
    the channel do not outlive it, and records the write's events as *unconfirmed*, with ``check``, what the
    store shows if the write landed. The relay publishes them once :class:`StoreChecks` finds that true, after
    the write can no longer be in flight, and drops them otherwise. A failure of the transaction is reported as
    the store being unavailable, so the writer is never told its write succeeded without its events recorded.
    """

    def __init__(self, engine: Engine, store: MessageStore, *, committed: Callable[[], None] = lambda: None,
                 record_events: bool = True):
        self._engine = engine
        self._store = store
        self._committed = committed
        self._record_events = record_events

    @property
    def records_events(self) -> bool:
        """Whether writes record their events (EVENT_BUS is not off)."""
        return self._record_events

    def apply(self, channel_id: int, write: Callable[[], Result], *, created: int | None = None,
              deleted: Collection[int] = (), events: Callable[[Result], Sequence[Event]] = no_events,
              check: dict | None = None, expected: Result | None = None) -> Result:
        """Run ``write`` (a call of the message store for ``channel_id``) and record it. ``created``: the id of a
        message it creates; ``deleted``: the ids of messages it deletes; ``events``: the events of the write,
        from what ``write`` returned. ``check`` (see :class:`StoreChecks`) and ``expected`` (what ``write``
        returns when it lands) describe the write's outcome, for when it fails and may have landed anyway."""
        if not self._record_events:
            events = no_events
        if self._store.joins_transactions_of(self._engine):
            result = self._in_one_transaction(channel_id, write, created, deleted, events)
        else:
            result = self._write_then_record(channel_id, write, created, deleted, events, check, expected)
        self._committed()
        return result

    def _in_one_transaction(self, channel_id, write, created, deleted, events):
        try:
            with shared_transaction(self._engine) as connection:
                result = write()
                if deleted:
                    self._move_last_off(connection, channel_id, deleted)
                self._bump_and_append(connection, channel_id, created, events(result))
        except DATABASE_UNAVAILABLE as error:
            # The database could not answer, as the SQL store reports its own statements' failures (they may fail
            # here: on PostgreSQL the store's writes are sent with the bookkeeping); any other database error
            # means a bug and stays what it is.
            log.error("could not record a write to channel %s: %s", channel_id, error)
            raise StoreUnavailable("channel unavailable") from error
        except sa_exc.DBAPIError as error:
            if not error.connection_invalidated:
                raise
            log.error("lost the connection recording a write to channel %s: %s", channel_id, error)
            raise StoreUnavailable("channel unavailable") from error
        return result

    def _bump_and_append(self, connection: Connection, channel_id: int, created: int | None,
                         recorded: Sequence[Event]) -> None:
        """The shared transaction's last statements: the bookkeeping (which locks the channel's row), then the
        events; on PostgreSQL with at most one event, with the COMMIT, in one round trip."""
        if len(recorded) > 1 or not commits_by_statement(connection):
            self._bump(connection, channel_id, created)
            outbox.append(connection, recorded)
            return
        parameters = {"channel_id": channel_id}
        if created is not None:
            parameters["created"] = created
        with outbox.recording(len(recorded)):
            if recorded:
                parameters.update(outbox.outbox_rows(recorded)[0])
            connection.execute(_PG_COMMITS[created is not None, bool(recorded)], parameters)

    def _write_then_record(self, channel_id, write, created, deleted, events, check, expected):
        try:
            result = write()
        except BaseException:
            def record_unknown(connection: Connection) -> None:
                self._bump(connection, channel_id, None)
                if check is not None:
                    outbox.append(connection, events(expected), unconfirmed=check)
            self._record(channel_id, record_unknown)
            raise

        replacement = self._replacement_of_last(channel_id, deleted) if deleted else None

        def record(connection: Connection) -> None:
            self._bump(connection, channel_id, created)
            if replacement is not None:
                connection.execute(_REPLACE_LAST, replacement)
            outbox.append(connection, events(result))

        self._record(channel_id, record)
        return result

    @staticmethod
    def _bump(connection: Connection, channel_id: int, created: int | None) -> None:
        if created is None:
            connection.execute(_BUMP_VERSION, {"channel_id": channel_id})
        else:
            connection.execute(_BUMP_AND_ADVANCE, {"channel_id": channel_id, "created": created})

    def _move_last_off(self, connection: Connection, channel_id: int, deleted: Collection[int]) -> None:
        """Inside the shared transaction: point ``last_message_id`` at the newest message left when it named a
        deleted one (the store reads in the same transaction, so it sees the deletion)."""
        last = connection.execute(_LAST_MESSAGE_ID, {"channel_id": channel_id}).scalar()
        if last is not None and last in deleted:
            newest = self._store.list_messages(channel_id, limit=1)
            connection.execute(_REPLACE_LAST, {"channel_id": channel_id, "deleted_last": last,
                                               "replacement": newest[0].id if newest else None})

    def _replacement_of_last(self, channel_id: int, deleted: Collection[int]) -> dict | None:
        """Outside any transaction (a store read may need the connection one would hold): the parameters of
        :data:`_REPLACE_LAST` when ``last_message_id`` names a deleted message, else None. The update applies
        only if nothing moved ``last_message_id`` meanwhile."""
        try:
            with self._engine.connect().execution_options(**READ_ONLY) as connection:
                last = connection.execute(_LAST_MESSAGE_ID, {"channel_id": channel_id}).scalar()
        except sa_exc.DBAPIError as error:
            raise StoreUnavailable("channel unavailable") from error
        if last is None or last not in deleted:
            return None
        newest = self._store.list_messages(channel_id, limit=1)
        return {"channel_id": channel_id, "deleted_last": last, "replacement": newest[0].id if newest else None}

    def _record(self, channel_id: int, work: Callable[[Connection], None]) -> None:
        try:
            with self._engine.begin() as connection:
                work(connection)
        except sa_exc.DBAPIError as error:
            log.error("could not record a write to channel %s: %s", channel_id, error)
            raise StoreUnavailable("channel version unavailable") from error


class StoreChecks:
    """Whether the message store shows what a write whose outcome was unknown would have left (the relay's
    ``confirm``). A check is a JSON-ready dict, one of:

    - ``{"message": [channel_id, message_id], "exists": bool}``; with ``"content"``, ``"flags"`` and
      ``"edited_at"`` (ISO 8601 or None) too, the message must also carry them (an edit);
    - ``{"messages": [channel_id, [message_ids]], "exists": false}`` (a bulk delete);
    - ``{"reaction": [channel_id, message_id, emoji_key, user_id], "present": bool}``;
    - ``{"reactions": [channel_id, message_id, emoji_key or None], "present": false}`` (all, or one emoji's);
    - ``{"pin": [channel_id, message_id], "pinned": bool}``.

    Answers None when the store cannot answer now (the relay asks again later).
    """

    def __init__(self, store: MessageStore):
        self._store = store

    def __call__(self, check: dict) -> bool | None:
        try:
            return self._holds(check)
        except StoreUnavailable:
            return None

    def _holds(self, check: dict) -> bool:
        store = self._store
        if "message" in check:
            channel_id, message_id = check["message"]
            message = store.get_message(channel_id, message_id)
            if message is None or not check["exists"]:
                return (message is not None) == check["exists"]
            shown = {"content": message.content, "flags": message.flags,
                     "edited_at": message.edited_at.isoformat() if message.edited_at is not None else None}
            return all(check[name] == value for name, value in shown.items() if name in check)
        if "messages" in check:
            channel_id, message_ids = check["messages"]
            return not store.get_messages(channel_id, message_ids)
        if "reaction" in check:
            channel_id, message_id, emoji, user_id = check["reaction"]
            reactors = store.reaction_users(channel_id, message_id, emoji, after=user_id - 1, limit=1)
            return (reactors == [user_id]) == check["present"]
        if "reactions" in check:
            channel_id, message_id, emoji = check["reactions"]
            counts = store.reaction_counts(channel_id, [message_id], 0).get(message_id, [])
            return not any(emoji is None or count.emoji == emoji for count in counts)
        channel_id, message_id = check["pin"]
        message = store.get_message(channel_id, message_id)
        return message is not None and message.pinned == check["pinned"]
