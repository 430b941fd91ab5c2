"""The SQL message store: Discord's layout in SQLite or PostgreSQL through SQLAlchemy Core.

Every operation is one short transaction. On SQLite the engine has a single connection per process, so an
operation never opens a second transaction while one is open; reads run in read-only transactions, which on
SQLite take no lock (models.base.READ_ONLY). A read is one statement: on PostgreSQL it runs as its own
transaction, in one round trip (models.base.single_statements).

Reading history: ``(bucket, message_id)`` sorts exactly like ``message_id`` (the bucket is a function of the id),
so a page is one range of the primary key index ``(channel_id, bucket, message_id)``, reached with a row-value
bound. Its cost depends on the page size only, not on the channel's size, age or sparseness; the bucket walk of
the base class, which other backends need, is not used here. The bucket index is still written, for backends
that read it and for backfills.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

from sqlalchemy import Connection, Engine, Integer, and_, bindparam, case, delete, func, or_, select, tuple_, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite

from app.ids import bucket_of
from app.messages.base import (
    EDITABLE_FIELDS,
    Message,
    MessageRef,
    MessageStore,
    Pin,
    ReactionCount,
    StoreUnavailable,
    keys_by_channel,
)
from app.messages.sql_tables import ChannelBucket, MessageNonce, PinnedMessage, Reaction, StoredMessage
from models.base import DATABASE_UNAVAILABLE, READ_ONLY, execute_later, joined_connection, single_statements

log = logging.getLogger(__name__)

messages = StoredMessage.__table__
channel_buckets = ChannelBucket.__table__
reactions = Reaction.__table__
pins = PinnedMessage.__table__
nonces = MessageNonce.__table__

#: Errors that mean "the database could not answer now" (lost or refused connection, lock or statement
#: timeout, pool exhausted). Any other database error is a bug and propagates.

#: The message columns in the order of Message's fields, so a row builds a Message positionally.
_MESSAGE_COLUMNS = [messages.c["message_id" if field.name == "id" else field.name]
                    for field in dataclasses.fields(Message)]
_DEFAULTS = Message(id=0, channel_id=0, author_id=0)
_KEY_FIELDS = {"id", "channel_id"}

#: INSERT constructs that offer ON CONFLICT, by dialect name (both spell it the same way).
_UPSERT_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def _page_query(after: bool, before: bool):
    """A page of history, in one range of the primary key index: ``(bucket_of(x), x)`` is where x sits in it,
    so row-value bounds on ``(bucket, message_id)`` are exactly ``after < id < before``."""
    position = tuple_(messages.c.bucket, messages.c.message_id)
    conditions = [messages.c.channel_id == bindparam("channel_id")]
    if after:
        conditions.append(position > tuple_(bindparam("after_bucket"), bindparam("after")))
    if before:
        conditions.append(position < tuple_(bindparam("before_bucket"), bindparam("before")))
    direction = "asc" if after else "desc"
    order = [getattr(messages.c.bucket, direction)(), getattr(messages.c.message_id, direction)()]
    return select(*_MESSAGE_COLUMNS).where(*conditions).order_by(*order).limit(bindparam("limit", type_=Integer))


# Statements of the hot paths, built once: building a statement costs more than running it on SQLite.
#: By (after given, before given). With ``after`` the walk goes oldest first, and the page is turned around.
_PAGES = {(after, before): _page_query(after, before) for after in (False, True) for before in (False, True)}
_FIRST_USED = func.min(reactions.c.reacted_at).label("first_used")
_REACTION_COUNTS = (
    select(reactions.c.message_id, reactions.c.emoji, func.count().label("count"),
           func.max(case((reactions.c.user_id == bindparam("viewer_id"), 1), else_=0)).label("me"), _FIRST_USED)
    .where(reactions.c.channel_id == bindparam("channel_id"),
           reactions.c.message_id.in_(bindparam("message_ids", expanding=True)))
    .group_by(reactions.c.message_id, reactions.c.emoji)
    .order_by(reactions.c.message_id, _FIRST_USED, reactions.c.emoji))
#: Both IN lists are index lookups on (channel_id, bucket, message_id); the id list keeps the result exact.
_MESSAGES_BY_ID = select(*_MESSAGE_COLUMNS).where(
    messages.c.channel_id == bindparam("channel_id"), messages.c.bucket.in_(bindparam("buckets", expanding=True)),
    messages.c.message_id.in_(bindparam("message_ids", expanding=True)))
#: Writes whose results nothing reads, for execute_later (which wants them built once).
_REACTIONS_OF = and_(reactions.c.channel_id == bindparam("channel_id"),
                     reactions.c.message_id == bindparam("message_id"))
_CLEAR_REACTIONS = delete(reactions).where(_REACTIONS_OF)
_REMOVE_EMOJI = delete(reactions).where(_REACTIONS_OF, reactions.c.emoji == bindparam("emoji"))
_REMOVE_REACTION = delete(reactions).where(_REACTIONS_OF, reactions.c.emoji == bindparam("emoji"),
                                           reactions.c.user_id == bindparam("user_id"))
_UNPIN = delete(pins).where(pins.c.channel_id == bindparam("channel_id"), pins.c.message_id == bindparam("message_id"))
#: One message's rows, deleted (the common delete; several ids take IN lists, which execute_later cannot send).
_DELETE_ONE = (
    delete(messages).where(messages.c.channel_id == bindparam("channel_id"), messages.c.bucket == bindparam("bucket"),
                           messages.c.message_id == bindparam("message_id")),
    delete(reactions).where(_REACTIONS_OF),
    delete(pins).where(pins.c.channel_id == bindparam("channel_id"), pins.c.message_id == bindparam("message_id")),
)
#: Its parameters are named apart from the columns: an UPDATE takes a column's name for a value to SET.
_MARK_UNPINNED = update(messages).where(
    messages.c.channel_id == bindparam("key_channel_id"), messages.c.bucket == bindparam("key_bucket"),
    messages.c.message_id == bindparam("key_message_id")).values(pinned=False)


def _in_channels(table, channels: int, *, by_bucket: bool):
    """A condition matching exactly the ``(channel_id, message_id)`` keys of ``channels`` channels, bound as
    ``channel_{n}``, ``ids_{n}`` (and ``buckets_{n}``): one index lookup per channel's term, each asked as
    :data:`_MESSAGES_BY_ID` asks for one channel. Statements using it are built once per count (an expression
    costs more to build than to run), and their compiled form is then cached by SQLAlchemy."""
    terms = []
    for n in range(channels):
        term = [table.c.channel_id == bindparam(f"channel_{n}"),
                table.c.message_id.in_(bindparam(f"ids_{n}", expanding=True))]
        if by_bucket:
            term.append(table.c.bucket.in_(bindparam(f"buckets_{n}", expanding=True)))
        terms.append(and_(*term))
    return or_(*terms)


@functools.lru_cache(maxsize=128)
def _messages_in_channels(channels: int):
    return select(*_MESSAGE_COLUMNS).where(_in_channels(messages, channels, by_bucket=True))


@functools.lru_cache(maxsize=128)
def _reaction_counts_in_channels(channels: int):
    return (select(*_REACTION_COUNTS.selected_columns).where(_in_channels(reactions, channels, by_bucket=False))
            .group_by(reactions.c.message_id, reactions.c.emoji)
            .order_by(reactions.c.message_id, _FIRST_USED, reactions.c.emoji))


def _keyed_parameters(keys: Iterable[tuple[int, int]], *, by_bucket: bool) -> dict:
    parameters = {}
    for n, (channel_id, ids) in enumerate(keys_by_channel(keys).items()):
        parameters[f"channel_{n}"], parameters[f"ids_{n}"] = channel_id, ids
        if by_bucket:
            parameters[f"buckets_{n}"] = sorted({bucket_of(i) for i in ids})
    return parameters


def _author_query(after: bool, before: bool):
    """One author's messages in a guild, newest first: a range of ix_messages_guild_author."""
    conditions = [messages.c.guild_id == bindparam("guild_id"), messages.c.author_id == bindparam("author_id")]
    if after:
        conditions.append(messages.c.message_id > bindparam("after"))
    if before:
        conditions.append(messages.c.message_id < bindparam("before"))
    return (select(messages.c.channel_id, messages.c.message_id).where(*conditions)
            .order_by(messages.c.message_id.desc()).limit(bindparam("limit", type_=Integer)))


_BY_AUTHOR = {(after, before): _author_query(after, before) for after in (False, True) for before in (False, True)}


#: The store's upserts for execute_later, by dialect name: built once per process, not per store, since
#: execute_later keeps every statement it is given for the life of the process.
_ADD_BUCKET = {name: insert(channel_buckets).on_conflict_do_nothing() for name, insert in _UPSERT_INSERTS.items()}
#: DO NOTHING keeps the first reacted_at, which orders the emojis.
_ADD_REACTION = {name: insert(reactions).on_conflict_do_nothing() for name, insert in _UPSERT_INSERTS.items()}
_CREATES: dict[tuple[str, tuple[str, ...]], object] = {}


def _create_statement(dialect_name: str, written: tuple[str, ...]):
    """The upsert of a message that sets ``written``, built once per dialect and set of fields (so their number is
    bounded by the combinations of fields that messages set): building it per call cost more than running it."""
    statement = _CREATES.get((dialect_name, written))
    if statement is None:
        insert = _UPSERT_INSERTS[dialect_name](messages)
        statement = _CREATES[dialect_name, written] = insert.on_conflict_do_update(
            index_elements=["channel_id", "bucket", "message_id"],
            set_={name: insert.excluded[name] for name in written})
    return statement


def _message_of(row) -> Message:
    return Message(*row)


def _message_key(channel_id: int, message_id: int):
    return and_(messages.c.channel_id == channel_id, messages.c.bucket == bucket_of(message_id),
                messages.c.message_id == message_id)


class SqlMessageStore(MessageStore):
    backend = "sql"

    def __init__(self, engine: Engine):
        if engine.dialect.name not in _UPSERT_INSERTS:
            raise ValueError(f"the SQL message store supports {sorted(_UPSERT_INSERTS)}, not {engine.dialect.name}")
        self.engine = engine
        self._read_engine = engine.execution_options(**READ_ONLY)
        self._upsert_insert = _UPSERT_INSERTS[engine.dialect.name]
        self._add_bucket = _ADD_BUCKET[engine.dialect.name]
        self._add_reaction = _ADD_REACTION[engine.dialect.name]

    def joins_transactions_of(self, engine: Engine) -> bool:
        return engine is self.engine

    @contextmanager
    def _transaction(self, *, read_only: bool = False) -> Iterator[Connection]:
        try:
            joined = joined_connection(self.engine)
            if joined is not None:
                # Inside the caller's shared transaction: its connection, its commit (and, on SQLite, the one
                # connection of the process, which a transaction of our own would wait for forever).
                yield joined
                return
            with (single_statements(self._read_engine) if read_only else self.engine.begin()) as connection:
                yield connection
        except DATABASE_UNAVAILABLE as error:
            log.warning("message store unavailable: %s", error)
            raise StoreUnavailable() from error
        except sa_exc.DBAPIError as error:
            if not error.connection_invalidated:
                raise
            log.warning("message store connection lost: %s", error)
            raise StoreUnavailable() from error

    def _insert(self, table):
        """An INSERT that can take ``on_conflict_do_nothing``/``on_conflict_do_update``, for this dialect."""
        return self._upsert_insert(table)

    # -- messages -------------------------------------------------------------------------------------------

    def create_message(self, message: Message) -> None:
        row = {column.name: getattr(message, "id" if column.name == "message_id" else column.name)
               for column in _MESSAGE_COLUMNS}
        # A repeated create rewrites only what the message sets, as a repeated write does in ScyllaDB: a retry
        # must not clear a pin or an edit made in between.
        written = tuple(field.name for field in dataclasses.fields(Message)
                        if field.name not in _KEY_FIELDS
                        and (field.name == "author_id"
                             or getattr(message, field.name) != getattr(_DEFAULTS, field.name)))
        with self._transaction() as connection:
            # Nothing reads what these return: inside a write's shared transaction on PostgreSQL they go to the
            # server with the channel's bookkeeping, in one round trip.
            execute_later(connection, _create_statement(self.engine.dialect.name, written),
                          {"bucket": message.bucket, **row})
            execute_later(connection, self._add_bucket, {"channel_id": message.channel_id, "bucket": message.bucket})

    def get_message(self, channel_id: int, message_id: int) -> Message | None:
        with self._transaction(read_only=True) as connection:
            row = connection.execute(select(*_MESSAGE_COLUMNS).where(_message_key(channel_id, message_id))).first()
        return None if row is None else _message_of(row)

    def get_messages(self, channel_id: int, message_ids: Iterable[int]) -> dict[int, Message]:
        ids = set(message_ids)
        if not ids:
            return {}
        with self._transaction(read_only=True) as connection:
            rows = connection.execute(_MESSAGES_BY_ID, {"channel_id": channel_id, "message_ids": list(ids),
                                                        "buckets": list({bucket_of(i) for i in ids})})
            return {row.message_id: _message_of(row) for row in rows}

    def get_messages_by_key(self, keys: Iterable[tuple[int, int]]) -> dict[int, Message]:
        parameters = _keyed_parameters(keys, by_bucket=True)
        if not parameters:
            return {}
        channels = len(parameters) // 3
        with self._transaction(read_only=True) as connection:
            rows = connection.execute(_messages_in_channels(channels), parameters)
            return {row.message_id: _message_of(row) for row in rows}

    def update_message(self, channel_id: int, message_id: int, changes: dict) -> Message | None:
        unknown = set(changes) - EDITABLE_FIELDS
        if unknown:
            raise ValueError(f"not editable: {sorted(unknown)}")
        if not changes:
            return self.get_message(channel_id, message_id)
        statement = (update(messages).where(_message_key(channel_id, message_id)).values(**changes)
                     .returning(*_MESSAGE_COLUMNS))
        with self._transaction() as connection:
            row = connection.execute(statement).first()
        return None if row is None else _message_of(row)

    def delete_messages(self, channel_id: int, message_ids: Sequence[int]) -> None:
        ids = set(message_ids)
        if not ids:
            return
        with self._transaction() as connection:
            if len(ids) == 1:
                (message_id,) = ids
                key = {"channel_id": channel_id, "bucket": bucket_of(message_id), "message_id": message_id}
                for statement in _DELETE_ONE:
                    execute_later(connection, statement, key)
                return
            connection.execute(delete(messages).where(
                messages.c.channel_id == channel_id, messages.c.bucket.in_({bucket_of(i) for i in ids}),
                messages.c.message_id.in_(ids)))
            connection.execute(delete(reactions).where(
                reactions.c.channel_id == channel_id, reactions.c.message_id.in_(ids)))
            connection.execute(delete(pins).where(pins.c.channel_id == channel_id, pins.c.message_id.in_(ids)))

    def delete_channel(self, channel_id: int) -> None:
        with self._transaction() as connection:
            for table in (messages, channel_buckets, reactions, pins, nonces):
                connection.execute(delete(table).where(table.c.channel_id == channel_id))

    # -- reading history ------------------------------------------------------------------------------------

    def channel_buckets(self, channel_id: int) -> list[int]:
        query = (select(channel_buckets.c.bucket).where(channel_buckets.c.channel_id == channel_id)
                 .order_by(channel_buckets.c.bucket.desc()))
        with self._transaction(read_only=True) as connection:
            return list(connection.execute(query).scalars())

    def count_messages(self, channel_id: int) -> int:
        with self._transaction(read_only=True) as connection:
            return connection.execute(
                select(func.count()).select_from(messages).where(messages.c.channel_id == channel_id)).scalar_one()

    def _read_bucket(
        self, channel_id: int, bucket: int, *, after: int | None, before: int | None, limit: int, oldest_first: bool
    ) -> list[Message]:
        conditions = [messages.c.channel_id == channel_id, messages.c.bucket == bucket]
        if after is not None:
            conditions.append(messages.c.message_id > after)
        if before is not None:
            conditions.append(messages.c.message_id < before)
        order = messages.c.message_id.asc() if oldest_first else messages.c.message_id.desc()
        with self._transaction(read_only=True) as connection:
            rows = connection.execute(select(*_MESSAGE_COLUMNS).where(*conditions).order_by(order).limit(limit))
            return [_message_of(row) for row in rows]

    def list_messages(
        self, channel_id: int, *, before: int | None = None, after: int | None = None, limit: int = 50
    ) -> list[Message]:
        """Same contract as :meth:`MessageStore.list_messages`, in one index range scan."""
        if limit <= 0 or (before is not None and before <= 0):
            return []
        if before is not None and after is not None and before - after <= 1:
            return []
        bounds = {"channel_id": channel_id, "limit": limit}
        if after is not None:
            bounds.update(after=after, after_bucket=bucket_of(after))
        if before is not None:
            bounds.update(before=before, before_bucket=bucket_of(before))
        with self._transaction(read_only=True) as connection:
            page = [_message_of(row) for row in connection.execute(_PAGES[after is not None, before is not None],
                                                                   bounds)]
        if after is not None:
            page.reverse()
        return page

    # -- the author index -----------------------------------------------------------------------------------

    def messages_by_author(
        self, guild_id: int, author_id: int, *, after: int | None, before: int | None, limit: int
    ) -> list[MessageRef]:
        if limit <= 0:
            return []
        bounds = {"guild_id": guild_id, "author_id": author_id, "limit": limit}
        if after is not None:
            bounds["after"] = after
        if before is not None:
            bounds["before"] = before
        with self._transaction(read_only=True) as connection:
            rows = connection.execute(_BY_AUTHOR[after is not None, before is not None], bounds)
            return [MessageRef(row.channel_id, row.message_id) for row in rows]

    # -- reactions ------------------------------------------------------------------------------------------

    def _reaction_key(self, channel_id: int, message_id: int):
        return and_(reactions.c.channel_id == channel_id, reactions.c.message_id == message_id)

    def add_reaction(self, channel_id: int, message_id: int, emoji: str, user_id: int) -> None:
        with self._transaction() as connection:
            execute_later(connection, self._add_reaction, {
                "channel_id": channel_id, "message_id": message_id, "emoji": emoji, "user_id": user_id,
                "reacted_at": datetime.now(timezone.utc)})

    def remove_reaction(self, channel_id: int, message_id: int, emoji: str, user_id: int) -> None:
        with self._transaction() as connection:
            execute_later(connection, _REMOVE_REACTION, {"channel_id": channel_id, "message_id": message_id,
                                                         "emoji": emoji, "user_id": user_id})

    def remove_emoji(self, channel_id: int, message_id: int, emoji: str) -> None:
        with self._transaction() as connection:
            execute_later(connection, _REMOVE_EMOJI, {"channel_id": channel_id, "message_id": message_id,
                                                      "emoji": emoji})

    def clear_reactions(self, channel_id: int, message_id: int) -> None:
        with self._transaction() as connection:
            execute_later(connection, _CLEAR_REACTIONS, {"channel_id": channel_id, "message_id": message_id})

    def reaction_users(
        self, channel_id: int, message_id: int, emoji: str, *, after: int | None, limit: int
    ) -> list[int]:
        if limit <= 0:
            return []
        conditions = [self._reaction_key(channel_id, message_id), reactions.c.emoji == emoji]
        if after is not None:
            conditions.append(reactions.c.user_id > after)
        query = select(reactions.c.user_id).where(*conditions).order_by(reactions.c.user_id).limit(limit)
        with self._transaction(read_only=True) as connection:
            return list(connection.execute(query).scalars())

    def reaction_counts(
        self, channel_id: int, message_ids: Sequence[int], viewer_id: int
    ) -> dict[int, list[ReactionCount]]:
        ids = set(message_ids)
        if not ids:
            return {}
        counts: dict[int, list[ReactionCount]] = {}
        with self._transaction(read_only=True) as connection:
            for row in connection.execute(_REACTION_COUNTS, {"channel_id": channel_id, "message_ids": list(ids),
                                                             "viewer_id": viewer_id}):
                counts.setdefault(row.message_id, []).append(ReactionCount(row.emoji, row.count, bool(row.me)))
        return counts

    def reaction_counts_by_key(
        self, keys: Iterable[tuple[int, int]], viewer_id: int
    ) -> dict[int, list[ReactionCount]]:
        parameters = _keyed_parameters(keys, by_bucket=False)
        if not parameters:
            return {}
        channels = len(parameters) // 2
        counts: dict[int, list[ReactionCount]] = {}
        with self._transaction(read_only=True) as connection:
            for row in connection.execute(_reaction_counts_in_channels(channels), {**parameters,
                                                                                   "viewer_id": viewer_id}):
                counts.setdefault(row.message_id, []).append(ReactionCount(row.emoji, row.count, bool(row.me)))
        return counts

    # -- pins -----------------------------------------------------------------------------------------------

    def pin_message(self, channel_id: int, message_id: int, pinned_at: datetime) -> None:
        with self._transaction() as connection:
            # Only an existing message gets a pin, so a pin racing a delete cannot outlive its message.
            found = connection.execute(
                update(messages).where(_message_key(channel_id, message_id)).values(pinned=True)).rowcount
            if found:
                connection.execute(self._insert(pins).values(
                    channel_id=channel_id, message_id=message_id, pinned_at=pinned_at).on_conflict_do_nothing())

    def unpin_message(self, channel_id: int, message_id: int) -> None:
        with self._transaction() as connection:
            execute_later(connection, _UNPIN, {"channel_id": channel_id, "message_id": message_id})
            execute_later(connection, _MARK_UNPINNED, {"key_channel_id": channel_id, "key_message_id": message_id,
                                                       "key_bucket": bucket_of(message_id)})

    def list_pins(self, channel_id: int, *, before: datetime | None, limit: int) -> list[Pin]:
        if limit <= 0:
            return []
        conditions = [pins.c.channel_id == channel_id]
        if before is not None:
            conditions.append(pins.c.pinned_at < before)
        query = (select(pins.c.message_id, pins.c.pinned_at).where(*conditions)
                 .order_by(pins.c.pinned_at.desc(), pins.c.message_id.desc()).limit(limit))
        with self._transaction(read_only=True) as connection:
            return [Pin(row.message_id, row.pinned_at) for row in connection.execute(query)]

    def count_pins(self, channel_id: int) -> int:
        query = select(func.count()).select_from(pins).where(pins.c.channel_id == channel_id)
        with self._transaction(read_only=True) as connection:
            return connection.execute(query).scalar_one()

    # -- nonces ---------------------------------------------------------------------------------------------

    def claim_nonce(
        self, channel_id: int, author_id: int, nonce: str, message_id: int, ttl_seconds: int
    ) -> int | None:
        now = datetime.now(timezone.utc)
        author = and_(nonces.c.channel_id == channel_id, nonces.c.author_id == author_id)
        with self._transaction() as connection:
            # Expired claims go when their author claims again: cheap (one index prefix), and keeps the table
            # to the authors' live claims.
            connection.execute(delete(nonces).where(author, nonces.c.expires_at <= now))
            connection.execute(self._insert(nonces).values(
                channel_id=channel_id, author_id=author_id, nonce=nonce, message_id=message_id,
                expires_at=now + timedelta(seconds=ttl_seconds)).on_conflict_do_nothing())
            holder = connection.execute(select(nonces.c.message_id).where(author, nonces.c.nonce == nonce)).scalar_one()
        # A retried claim that had succeeded finds its own message: the claim is still ours.
        return None if holder == message_id else holder

    # -- lifecycle ------------------------------------------------------------------------------------------

    def ping(self) -> None:
        with self._transaction(read_only=True) as connection:
            connection.execute(select(1))
