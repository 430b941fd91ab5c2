"""The ScyllaDB message store: Discord's layout through the Cassandra driver, cooperative under gevent.

One driver Cluster/Session per process, created on first use (after gevent has patched, never at import) with
the project's gevent connection class. Statements are prepared once and routed token-aware to a replica in the
local datacenter; reads are speculatively re-sent to a second replica when the first is slow. Every operational
driver error becomes :class:`StoreUnavailable`.

The edit/delete race: an UPDATE is an upsert, so an edit landing after a delete recreates the row with only the
edited cells. ``author_id`` is written by every create and by nothing else, so a row without it is such a
remnant: reads never return it and delete it when they meet it, and an edit that finds it has lost the race.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import threading
import typing
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone

from cassandra import ConsistencyLevel, CoordinationFailure, OperationTimedOut, Timeout, Unavailable
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable
from cassandra.connection import ConnectionBusy, ConnectionException
from cassandra.policies import (
    ConstantSpeculativeExecutionPolicy,
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    RetryPolicy,
    TokenAwarePolicy,
)
from cassandra.protocol import IsBootstrappingErrorMessage, OverloadedErrorMessage
from cassandra.query import UNSET_VALUE, BatchStatement, BatchType
from opentelemetry.trace import SpanKind, Status, StatusCode

from app.ids import MAX_SNOWFLAKE, bucket_bounds, bucket_of
from app.messages.base import (
    EDITABLE_FIELDS,
    Message,
    MessageRef,
    MessageStore,
    Pin,
    ReactionCount,
    StoreUnavailable,
)
from app.messages.gevent_connection import CooperativeConnection, assert_cooperative
from app.observability.tracing import TRACER
from config import Settings

log = logging.getLogger(__name__)

#: Driver errors that mean "the cluster could not answer now"; anything else is a bug and propagates.
OPERATIONAL_ERRORS = (Unavailable, Timeout, CoordinationFailure, OperationTimedOut, NoHostAvailable,
                      ConnectionException, ConnectionBusy, OverloadedErrorMessage, IsBootstrappingErrorMessage)

READ_PROFILE = "reads"
#: Buckets read at once when the newest bucket alone did not fill the page.
BUCKET_PREFETCH = 3
#: A read goes to a second replica when the first has not answered after this share of the request timeout.
SPECULATIVE_DELAY_SHARE = 0.1

_DEFAULTS = Message(id=0, channel_id=0, author_id=0)
_FIELDS = tuple(field.name for field in dataclasses.fields(Message))
#: The message columns in the order of Message's fields, so a row builds a Message positionally.
_MESSAGE_COLUMNS = tuple("message_id" if name == "id" else name for name in _FIELDS)
#: What a create writes besides the key; column and field names are the same.
_VALUE_COLUMNS = tuple(name for name in _FIELDS if name not in {"id", "channel_id"})
_INSERT_COLUMNS = ("channel_id", "bucket", "message_id", *_VALUE_COLUMNS)
_EDITABLE_COLUMNS = tuple(sorted(EDITABLE_FIELDS))
_FIELD_DEFAULTS = tuple(getattr(_DEFAULTS, name) for name in _FIELDS)
#: Columns that hold a datetime as microseconds since the epoch.
_TIME_FIELDS = frozenset(name for name, hint in typing.get_type_hints(Message).items()
                         if datetime in (hint, *typing.get_args(hint)))


class RetryOnceElsewhere(RetryPolicy):
    """Retry a failed request once on the next replica, writes only when marked idempotent (all of ours are,
    as every write is keyed by snowflake). A second failure is the caller's StoreUnavailable."""

    def on_read_timeout(self, query, consistency, required_responses, received_responses, data_retrieved,
                        retry_num):
        return (self.RETRY_NEXT_HOST, None) if retry_num == 0 else (self.RETHROW, None)

    def on_write_timeout(self, query, consistency, write_type, required_responses, received_responses,
                         retry_num):
        return self._once_if_idempotent(query, retry_num)

    def on_unavailable(self, query, consistency, required_replicas, alive_replicas, retry_num):
        return (self.RETRY_NEXT_HOST, None) if retry_num == 0 else (self.RETHROW, None)

    def on_request_error(self, query, consistency, error, retry_num):
        return self._once_if_idempotent(query, retry_num)

    def _once_if_idempotent(self, query, retry_num):
        if retry_num == 0 and query is not None and query.is_idempotent:
            return self.RETRY_NEXT_HOST, None
        return self.RETHROW, None


def _end_span(span, error: BaseException | None = None) -> None:
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.record_exception(error)
    span.end()


@functools.lru_cache(maxsize=256)
def _row_class(column_names: tuple[str, ...]) -> type:
    return collections.namedtuple("Row", column_names, rename=True)


def named_tuple_rows(column_names, rows) -> list:
    """Rows as named tuples, like the driver's default factory, without building a new class per response
    (which costs more than decoding a small result)."""
    row_class = _row_class(tuple(column_names))
    return [row_class(*row) for row in rows]


def build_cluster(settings: Settings, connection_class: type = CooperativeConnection) -> Cluster:
    """The driver Cluster for ``settings``: token-aware within the local DC, timeouts, speculative reads."""
    consistency = ConsistencyLevel.name_to_value[settings.scylla_consistency]

    def profile(**options) -> ExecutionProfile:
        return ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=settings.scylla_local_dc)),
            retry_policy=RetryOnceElsewhere(), consistency_level=consistency,
            serial_consistency_level=ConsistencyLevel.LOCAL_SERIAL, request_timeout=settings.scylla_request_timeout,
            row_factory=named_tuple_rows, **options)

    speculative = ConstantSpeculativeExecutionPolicy(
        delay=settings.scylla_request_timeout * SPECULATIVE_DELAY_SHARE, max_attempts=1)
    return Cluster(
        contact_points=list(settings.scylla_hosts), port=settings.scylla_port,
        # ScyllaDB speaks protocol v4; pinning it skips a failed v5 handshake on every new connection.
        protocol_version=4,
        connection_class=connection_class,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile(),
                            READ_PROFILE: profile(speculative_execution_policy=speculative)},
        connect_timeout=settings.scylla_connect_timeout,
        control_connection_timeout=settings.scylla_connect_timeout,
        reconnection_policy=ExponentialReconnectionPolicy(base_delay=0.5, max_delay=30.0),
    )


class _Unavailable:
    """Context manager turning operational driver errors into StoreUnavailable."""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, traceback):
        if isinstance(exc, OPERATIONAL_ERRORS):
            raise StoreUnavailable(f"message store unavailable: {type(exc).__name__}: {exc}") from exc
        return False


_unavailable = _Unavailable()


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def to_microseconds(moment: datetime) -> int:
    """A datetime as stored: microseconds since the epoch (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - _EPOCH) // _MICROSECOND


def from_microseconds(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + value * _MICROSECOND


def _loaded(value, field: str):
    """A column's non-null value as its field holds it; the inverse of :func:`_stored`."""
    if isinstance(value, list):
        return tuple(value)
    if field in _TIME_FIELDS:
        return from_microseconds(value)
    return value


def _stored(value):
    """A field's value as its column takes it."""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, datetime):
        return to_microseconds(value)
    return value


class ScyllaMessageStore(MessageStore):
    backend = "scylla"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.keyspace = settings.scylla_keyspace
        self._lock = threading.Lock()
        self._prepare_lock = threading.Lock()
        self._cluster: Cluster | None = None
        self._session = None
        self._statements: dict[str, object] = {}

    # -- driver plumbing ------------------------------------------------------------------------------------

    @property
    def session(self):
        """The process's Session, connected on first use."""
        if self._session is None:
            with self._lock:
                if self._session is None:
                    cluster = build_cluster(self.settings)
                    try:
                        assert_cooperative(cluster.connection_class)
                        with _unavailable:
                            self._session = cluster.connect()
                    except BaseException:
                        cluster.shutdown()
                        raise
                    self._cluster = cluster
        return self._session

    def _prepared(self, cql: str):
        """The prepared statement for ``cql`` ({ks} stands for the keyspace), prepared once per process."""
        statement = self._statements.get(cql)
        if statement is None:
            # One PreparedStatement per query: the driver's registry of prepared statements holds them weakly,
            # so a second object from a concurrent prepare, once dropped, would take the registry's entry with
            # it, and the driver could no longer re-prepare the query when a node answers UNPREPARED.
            with self._prepare_lock:
                statement = self._statements.get(cql)
                if statement is None:
                    with _unavailable:
                        statement = self.session.prepare(cql.format(ks=self.keyspace))
                    # Every statement of this store is keyed by snowflake ids and safe to repeat.
                    statement.is_idempotent = True
                    self._statements[cql] = statement
        return statement

    def _execute(self, cql: str, values: Sequence, *, is_read: bool = False):
        with _unavailable:
            # The driver's own execute is exactly execute_async(...).result(); one path keeps one span.
            return self._request(self._prepared(cql), values, cql,
                                 READ_PROFILE if is_read else EXEC_PROFILE_DEFAULT).result()

    def _execute_async(self, cql: str, values: Sequence, *, is_read: bool = False):
        with _unavailable:
            return self._request(self._prepared(cql), values, cql, READ_PROFILE if is_read else EXEC_PROFILE_DEFAULT)

    def _request(self, statement, values: Sequence | None, cql: str, profile):
        """Send one request; when traced, its client span lasts until the driver has the answer.

        By hand rather than OpenTelemetry's Cassandra instrumentation, whose span ends when the request has been
        sent, long before it is answered.
        """
        span = TRACER.start_span("scylla", kind=SpanKind.CLIENT)
        if span.is_recording():
            span.update_name(f"scylla {cql.split(None, 1)[0]}")
            span.set_attributes({"db.system": "cassandra", "db.namespace": self.keyspace,
                                 "db.query.text": cql.format(ks=self.keyspace)})
        try:
            future = self.session.execute_async(statement, values, execution_profile=profile)
        except BaseException as exc:
            _end_span(span, exc)
            raise
        if span.is_recording():
            future.add_callbacks(lambda _rows: _end_span(span), lambda exc: _end_span(span, exc))
        return future

    @staticmethod
    def _wait(futures: Iterable) -> list:
        """Results of concurrent requests, in order; the first failure becomes StoreUnavailable."""
        futures = list(futures)
        with _unavailable:
            return [future.result() for future in futures]

    # -- messages -------------------------------------------------------------------------------------------

    _INSERT_MESSAGE = (f"INSERT INTO {{ks}}.messages ({', '.join(_INSERT_COLUMNS)}) "
                       f"VALUES ({', '.join('?' * len(_INSERT_COLUMNS))})")
    _INSERT_BUCKET = "INSERT INTO {ks}.channel_buckets (channel_id, bucket) VALUES (?, ?)"
    _INSERT_BY_AUTHOR = ("INSERT INTO {ks}.messages_by_author (guild_id, author_id, message_id, channel_id) "
                         "VALUES (?, ?, ?, ?)")
    _DELETE_BY_AUTHOR = "DELETE FROM {ks}.messages_by_author WHERE guild_id = ? AND author_id = ? AND message_id = ?"
    _READ_BY_AUTHOR = ("SELECT channel_id, message_id FROM {ks}.messages_by_author WHERE guild_id = ? "
                       "AND author_id = ? AND message_id >= ? AND message_id <= ? LIMIT ?")
    _SELECT_MESSAGE = (f"SELECT {', '.join(_MESSAGE_COLUMNS)} FROM {{ks}}.messages "
                       "WHERE channel_id = ? AND bucket = ? AND message_id = ?")
    _DELETE_MESSAGE = "DELETE FROM {ks}.messages WHERE channel_id = ? AND bucket = ? AND message_id = ?"
    _UPDATE_MESSAGE = (f"UPDATE {{ks}}.messages SET {', '.join(c + ' = ?' for c in _EDITABLE_COLUMNS)} "
                       "WHERE channel_id = ? AND bucket = ? AND message_id = ?")

    def create_message(self, message: Message) -> None:
        # Unset values are not written at all, where a None would write a tombstone.
        values = [self._column_value(message, column) for column in _VALUE_COLUMNS]
        batch = BatchStatement(batch_type=BatchType.LOGGED)
        batch.is_idempotent = True
        batch.add(self._prepared(self._INSERT_MESSAGE), [message.channel_id, message.bucket, message.id, *values])
        # The message and its bucket's index entry go together, so the index never misses a non-empty bucket.
        batch.add(self._prepared(self._INSERT_BUCKET), [message.channel_id, message.bucket])
        if message.guild_id is not None:
            # The author index goes in the same logged batch: it never misses a message that exists.
            batch.add(self._prepared(self._INSERT_BY_AUTHOR),
                      [message.guild_id, message.author_id, message.id, message.channel_id])
        with _unavailable:
            self._request(batch, None, "BATCH " + self._INSERT_MESSAGE, EXEC_PROFILE_DEFAULT).result()

    @staticmethod
    def _column_value(message: Message, column: str):
        value = getattr(message, column)
        if column == "author_id":
            return value
        if value == getattr(_DEFAULTS, column):
            return UNSET_VALUE
        return _stored(value)

    def get_message(self, channel_id: int, message_id: int) -> Message | None:
        row = self._execute(self._SELECT_MESSAGE, (channel_id, bucket_of(message_id), message_id), is_read=True).one()
        return self._to_message(row)

    def get_messages(self, channel_id: int, message_ids: Iterable[int]) -> dict[int, Message]:
        return self.get_messages_by_key((channel_id, message_id) for message_id in message_ids)

    def get_messages_by_key(self, keys: Iterable[tuple[int, int]]) -> dict[int, Message]:
        # Every partition is asked at once, whichever channel it belongs to.
        results = self._wait(self._execute_async(self._SELECT_MESSAGE, (channel_id, bucket_of(i), i), is_read=True)
                             for channel_id, i in sorted(set(keys)))
        messages = (self._to_message(result.one()) for result in results)
        return {message.id: message for message in messages if message is not None}

    def _to_message(self, row) -> Message | None:
        if row is None:
            return None
        if row.author_id is None:
            self._remove_remnant(row.channel_id, row.message_id)
            return None
        # A cell never written (see create_message) reads as null: it holds the field's default.
        return Message(*(default if value is None else _loaded(value, name)
                         for name, value, default in zip(_FIELDS, row, _FIELD_DEFAULTS)))

    def _remove_remnant(self, channel_id: int, message_id: int) -> None:
        """Delete what an edit racing a delete left behind; in the background, as a reader must not wait."""
        log.info("removing the remnant of deleted message %s in channel %s", message_id, channel_id)
        try:
            future = self._execute_async(self._DELETE_MESSAGE, (channel_id, bucket_of(message_id), message_id))
        except StoreUnavailable:
            return  # the next reader will try again
        future.add_errback(lambda exc: log.warning("could not remove remnant %s: %s", message_id, exc))

    def update_message(self, channel_id: int, message_id: int, changes: dict) -> Message | None:
        unknown = set(changes) - EDITABLE_FIELDS
        if unknown:
            raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
        if self.get_message(channel_id, message_id) is None:
            return None
        values = [_stored(changes[c]) if c in changes else UNSET_VALUE for c in _EDITABLE_COLUMNS]
        self._execute(self._UPDATE_MESSAGE, (*values, channel_id, bucket_of(message_id), message_id))
        # Read back: if a delete won the race, this sees (and removes) the remnant and answers None.
        return self.get_message(channel_id, message_id)

    def delete_messages(self, channel_id: int, message_ids: Sequence[int]) -> None:
        # The author index is keyed by guild and author, which only the messages know: read them first. Its
        # entries go only once the messages are gone: a delete that fails part way leaves the entries of messages
        # that may still be there (so a retried ban's purge still finds them), and an entry whose message is gone
        # is skipped by readers.
        indexed = [m for m in self.get_messages(channel_id, message_ids).values() if m.guild_id is not None]
        requests = []
        for message_id in set(message_ids):
            key = (channel_id, bucket_of(message_id), message_id)
            requests.append(self._execute_async(self._DELETE_MESSAGE, key))
            requests.append(self._execute_async(self._CLEAR_REACTIONS, key))
            requests.append(self._execute_async(self._DELETE_PIN, (channel_id, message_id)))
        self._wait(requests)
        self._wait(self._execute_async(self._DELETE_BY_AUTHOR, (m.guild_id, m.author_id, m.id)) for m in indexed)

    def delete_channel(self, channel_id: int) -> None:
        requests = []
        for bucket in self.channel_buckets(channel_id):
            requests.append(self._execute_async("DELETE FROM {ks}.messages WHERE channel_id = ? AND bucket = ?",
                                                (channel_id, bucket)))
            requests.append(self._execute_async("DELETE FROM {ks}.reactions WHERE channel_id = ? AND bucket = ?",
                                                (channel_id, bucket)))
        requests.append(self._execute_async("DELETE FROM {ks}.pins WHERE channel_id = ?", (channel_id,)))
        requests.append(self._execute_async("DELETE FROM {ks}.nonces WHERE channel_id = ?", (channel_id,)))
        self._wait(requests)
        # The index goes last: should anything above fail, a retry still finds every bucket to delete.
        self._execute("DELETE FROM {ks}.channel_buckets WHERE channel_id = ?", (channel_id,))

    # -- the author index -----------------------------------------------------------------------------------

    def messages_by_author(
        self, guild_id: int, author_id: int, *, after: int | None, before: int | None, limit: int
    ) -> list[MessageRef]:
        if limit <= 0:
            return []
        low = 0 if after is None else after + 1
        high = MAX_SNOWFLAKE if before is None else before - 1
        if low > high:
            return []
        rows = self._execute(self._READ_BY_AUTHOR, (guild_id, author_id, low, high, limit), is_read=True)
        return [MessageRef(row.channel_id, row.message_id) for row in rows]

    _SET_GUILD = "UPDATE {ks}.messages SET guild_id = ? WHERE channel_id = ? AND bucket = ? AND message_id = ?"

    def index_authors(self, channel_id: int, guild_id: int, *, since: int) -> int:
        changed = 0
        first = bucket_of(since)
        for bucket in self.channel_buckets(channel_id):
            if bucket < first:
                continue
            for message in self.messages_in_bucket(channel_id, bucket):
                if message.id < since or message.guild_id is not None:
                    continue
                # Both in one logged batch, as create_message writes them: the column set means the entry exists.
                batch = BatchStatement(batch_type=BatchType.LOGGED)
                batch.is_idempotent = True
                batch.add(self._prepared(self._SET_GUILD), [guild_id, channel_id, bucket, message.id])
                batch.add(self._prepared(self._INSERT_BY_AUTHOR), [guild_id, message.author_id, message.id,
                                                                    channel_id])
                with _unavailable:
                    self._request(batch, None, "BATCH " + self._SET_GUILD, EXEC_PROFILE_DEFAULT).result()
                changed += 1
        return changed

    # -- reading history ------------------------------------------------------------------------------------

    _READ_NEWEST = (f"SELECT {', '.join(_MESSAGE_COLUMNS)} FROM {{ks}}.messages WHERE channel_id = ? AND bucket = ? "
                    "AND message_id >= ? AND message_id <= ? LIMIT ?")
    _READ_OLDEST = (f"SELECT {', '.join(_MESSAGE_COLUMNS)} FROM {{ks}}.messages WHERE channel_id = ? AND bucket = ? "
                    "AND message_id >= ? AND message_id <= ? ORDER BY message_id ASC LIMIT ?")

    def channel_buckets(self, channel_id: int) -> list[int]:
        rows = self._execute("SELECT bucket FROM {ks}.channel_buckets WHERE channel_id = ?", (channel_id,),
                             is_read=True)
        return [row.bucket for row in rows]

    def _read_bucket(self, channel_id, bucket, *, after, before, limit, oldest_first) -> list[Message]:
        return self._finish_bucket_read(self._start_bucket_read(channel_id, bucket, after, before, limit, oldest_first))

    def _read_buckets(self, channel_id, buckets, *, after, before, limit, oldest_first):
        """The first bucket alone (a busy channel fills the page from it), then a few at a time concurrently,
        each asking only for what the page still lacks; the walk stops issuing reads once the page is full."""
        pending: collections.deque = collections.deque()
        remaining, issued, window = limit, 0, 1
        while issued < len(buckets) or pending:
            while issued < len(buckets) and len(pending) < window:
                pending.append(self._start_bucket_read(
                    channel_id, buckets[issued], after, before, remaining, oldest_first))
                issued += 1
            page = self._finish_bucket_read(pending.popleft())
            remaining, window = max(remaining - len(page), 1), BUCKET_PREFETCH
            yield page

    def _start_bucket_read(self, channel_id, bucket, after, before, limit, oldest_first):
        first, last = bucket_bounds(bucket)
        low = first if after is None else max(first, after + 1)
        high = min(last, MAX_SNOWFLAKE) if before is None else min(last, before - 1, MAX_SNOWFLAKE)
        return self._start_range_read(channel_id, bucket, low, high, limit, oldest_first)

    def _start_range_read(self, channel_id, bucket, low, high, limit, oldest_first):
        """Start reading ids ``low..high`` (inclusive) of one bucket; None when the range is empty."""
        future = None
        if low <= high:
            future = self._execute_async(self._READ_OLDEST if oldest_first else self._READ_NEWEST,
                                         (channel_id, bucket, low, high, limit), is_read=True)
        return future, (channel_id, bucket, low, high, limit, oldest_first)

    def _finish_bucket_read(self, started) -> list[Message]:
        future, (channel_id, bucket, low, high, limit, oldest_first) = started
        if future is None:
            return []
        rows = self._wait([future])[0].current_rows
        messages = [m for m in (self._to_message(row) for row in rows) if m is not None]
        if len(rows) == limit and len(messages) < limit:
            # Remnants took places in the page: continue past the last row read.
            last = rows[-1].message_id
            low, high = (last + 1, high) if oldest_first else (low, last - 1)
            messages += self._finish_bucket_read(self._start_range_read(
                channel_id, bucket, low, high, limit - len(messages), oldest_first))
        return messages

    # -- reactions ------------------------------------------------------------------------------------------

    _REACTION_KEY = "channel_id = ? AND bucket = ? AND message_id = ?"
    _CLEAR_REACTIONS = "DELETE FROM {ks}.reactions WHERE " + _REACTION_KEY

    def add_reaction(self, channel_id: int, message_id: int, emoji: str, user_id: int) -> None:
        key = (channel_id, bucket_of(message_id), message_id, emoji, user_id)
        existing = self._execute("SELECT user_id FROM {ks}.reactions WHERE " + self._REACTION_KEY +
                                 " AND emoji = ? AND user_id = ?", key, is_read=True).one()
        # Re-adding must not move the reaction's time, which orders the emojis.
        if existing is None:
            self._execute("INSERT INTO {ks}.reactions (channel_id, bucket, message_id, emoji, user_id, reacted_at) "
                          "VALUES (?, ?, ?, ?, ?, ?)", (*key, to_microseconds(datetime.now(timezone.utc))))

    def remove_reaction(self, channel_id: int, message_id: int, emoji: str, user_id: int) -> None:
        self._execute("DELETE FROM {ks}.reactions WHERE " + self._REACTION_KEY + " AND emoji = ? AND user_id = ?",
                      (channel_id, bucket_of(message_id), message_id, emoji, user_id))

    def remove_emoji(self, channel_id: int, message_id: int, emoji: str) -> None:
        self._execute("DELETE FROM {ks}.reactions WHERE " + self._REACTION_KEY + " AND emoji = ?",
                      (channel_id, bucket_of(message_id), message_id, emoji))

    def clear_reactions(self, channel_id: int, message_id: int) -> None:
        self._execute(self._CLEAR_REACTIONS, (channel_id, bucket_of(message_id), message_id))

    def reaction_users(self, channel_id: int, message_id: int, emoji: str, *, after: int | None,
                       limit: int) -> list[int]:
        if limit <= 0:
            return []
        rows = self._execute("SELECT user_id FROM {ks}.reactions WHERE " + self._REACTION_KEY +
                             " AND emoji = ? AND user_id > ? LIMIT ?",
                             (channel_id, bucket_of(message_id), message_id, emoji, -1 if after is None else after,
                              limit), is_read=True)
        return [row.user_id for row in rows]

    def reaction_counts(self, channel_id: int, message_ids: Sequence[int],
                        viewer_id: int) -> dict[int, list[ReactionCount]]:
        return self.reaction_counts_by_key(((channel_id, message_id) for message_id in message_ids), viewer_id)

    def reaction_counts_by_key(self, keys: Iterable[tuple[int, int]],
                               viewer_id: int) -> dict[int, list[ReactionCount]]:
        keys = sorted(set(keys))
        results = self._wait(self._execute_async(
            "SELECT emoji, user_id, reacted_at FROM {ks}.reactions WHERE " + self._REACTION_KEY,
            (channel_id, bucket_of(i), i), is_read=True) for channel_id, i in keys)
        counts = {}
        for (_, message_id), rows in zip(keys, results):
            first_used: dict[str, int] = {}
            users: dict[str, list[int]] = collections.defaultdict(list)
            with _unavailable:
                for row in rows:
                    users[row.emoji].append(row.user_id)
                    if row.emoji not in first_used or row.reacted_at < first_used[row.emoji]:
                        first_used[row.emoji] = row.reacted_at
            if users:
                counts[message_id] = [ReactionCount(emoji, len(users[emoji]), viewer_id in users[emoji])
                                      for emoji in sorted(users, key=lambda e: (first_used[e], e))]
        return counts

    # -- pins -----------------------------------------------------------------------------------------------

    _DELETE_PIN = "DELETE FROM {ks}.pins WHERE channel_id = ? AND message_id = ?"
    _SET_PINNED = "UPDATE {ks}.messages SET pinned = ? WHERE channel_id = ? AND bucket = ? AND message_id = ?"

    def pin_message(self, channel_id: int, message_id: int, pinned_at: datetime) -> None:
        # IF NOT EXISTS keeps the first pin time when a pin is repeated.
        self._execute("INSERT INTO {ks}.pins (channel_id, message_id, pinned_at) VALUES (?, ?, ?) IF NOT EXISTS",
                      (channel_id, message_id, to_microseconds(pinned_at)))
        self._execute(self._SET_PINNED, (True, channel_id, bucket_of(message_id), message_id))

    def unpin_message(self, channel_id: int, message_id: int) -> None:
        self._execute(self._DELETE_PIN, (channel_id, message_id))
        self._execute(self._SET_PINNED, (False, channel_id, bucket_of(message_id), message_id))

    def _pins(self, channel_id: int) -> list[Pin]:
        rows = self._execute("SELECT message_id, pinned_at FROM {ks}.pins WHERE channel_id = ?", (channel_id,),
                             is_read=True)
        with _unavailable:
            pins = [Pin(row.message_id, from_microseconds(row.pinned_at)) for row in rows]
        return sorted(pins, key=lambda pin: (pin.pinned_at, pin.message_id), reverse=True)

    def list_pins(self, channel_id: int, *, before: datetime | None, limit: int) -> list[Pin]:
        pins = self._pins(channel_id)
        if before is not None:
            pins = [pin for pin in pins if pin.pinned_at < before]
        return pins[:max(limit, 0)]

    def count_pins(self, channel_id: int) -> int:
        return len(self._pins(channel_id))

    # -- nonces ---------------------------------------------------------------------------------------------

    def claim_nonce(self, channel_id: int, author_id: int, nonce: str, message_id: int,
                    ttl_seconds: int) -> int | None:
        result = self._execute(
            "INSERT INTO {ks}.nonces (channel_id, author_id, nonce, message_id) VALUES (?, ?, ?, ?) "
            "IF NOT EXISTS USING TTL ?", (channel_id, author_id, nonce, message_id, ttl_seconds))
        row = result.one()
        applied = row[0]  # the "[applied]" column of a conditional write
        if applied or row.message_id == message_id:
            # A retried claim that had succeeded finds its own message: still ours.
            return None
        return row.message_id

    # -- lifecycle ------------------------------------------------------------------------------------------

    def ping(self) -> None:
        self._execute("SELECT bucket FROM {ks}.channel_buckets WHERE channel_id = ? LIMIT 1", (0,), is_read=True)

    def close(self) -> None:
        with self._lock:
            if self._cluster is not None:
                self._cluster.shutdown()
            self._cluster = self._session = None
            self._statements.clear()
