"""Seed a migrated database for the benchmark: users with tokens, a guild, channels, and message histories.

Metadata goes through the test factories (the service's own code paths). The sparse channel's messages go
through the message store; the bulk of the history (``history_size`` messages over five years, plus the fresh
and hot channels) is inserted in batches into the SQL store's tables, because one transaction per message
(what ``create_message`` does) takes hours for a million messages on a shared disk. The rows are the ones
``create_message`` writes for a plain message, and the seed reads a sample back through the store to prove it.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sqlalchemy.dialects import postgresql, sqlite

from app.ids import bucket_of, snowflake_from_ms
from app.messages.base import Message, MessageStore
from app.messages.sql_tables import ChannelBucket, StoredMessage
from bench.fixtures import sample_line

USERS = 8
FRESH_CHANNELS = 64
FRESH_MESSAGES = 60
HOT_MESSAGES = 60
HISTORY_YEARS = 5
DEEP_YEARS_BACK = 3
AROUND_YEARS_BACK = 2
#: Distinct cursors per paging scenario, so that concurrent requests rarely ask for the same page.
CURSORS = 64
REACTION_TARGETS = 50
SPARSE_INTERVAL_DAYS = 91
BATCH = 10_000
MINUTE_MS = 60_000
DAY_MS = 24 * 3600 * 1000
YEAR_MS = 365 * DAY_MS
_UPSERT_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}

#: (channel_id, message_id, author_id, content): a plain message, as the bulk writer takes it
Entry = tuple[int, int, int, str]


@dataclass(frozen=True)
class SeededService:
    tokens: list[str]
    guild_id: int
    fresh_channels: list[int]
    hot_channel: int
    #: the channel every connection of the hot-write scenario posts into
    hot_write_channel: int
    history_channel: int
    sparse_channel: int
    deep_cursors: list[int]
    around_cursors: list[int]
    #: "channel_id/message_id" of messages the reaction scenario reacts to
    reaction_targets: list[str]
    history_size: int
    sparse_size: int
    seconds: float


def seed(resources, history_size: int) -> SeededService:
    from tests.support.factories import Factory

    started = time.monotonic()
    now_ms = int(time.time() * 1000)
    factory = Factory(resources)
    actors = [factory.actor(f"bench{n}") for n in range(USERS)]
    guild_id, _general = factory.guild(actors[0], "benchmark guild")
    for actor in actors[1:]:
        factory.member(guild_id, actor)
    fresh = [factory.channel(guild_id, f"fresh-{n}") for n in range(FRESH_CHANNELS)]
    hot = factory.channel(guild_id, "hot")
    hot_write = factory.channel(guild_id, "hot-write")
    history = factory.channel(guild_id, "history")
    sparse = factory.channel(guild_id, "sparse")
    authors = [actor.id for actor in actors]

    def spaced(channel_id: int, count: int, spacing_ms: int) -> Iterator[Entry]:
        """``count`` messages ``spacing_ms`` apart, the newest now."""
        for n in range(count):
            # The low bits keep ids unique when two messages fall in the same millisecond.
            yield channel_id, snowflake_from_ms(now_ms - n * spacing_ms) + n % 4096, authors[n % len(authors)], \
                sample_line(n)

    bulk_create = _bulk_creator(resources)
    bulk_create(itertools.chain.from_iterable(spaced(c, FRESH_MESSAGES, MINUTE_MS) for c in fresh))
    bulk_create(spaced(hot, HOT_MESSAGES, MINUTE_MS))
    bulk_create(spaced(hot_write, FRESH_MESSAGES, MINUTE_MS))
    history_spacing_ms = HISTORY_YEARS * YEAR_MS // max(history_size, 1)
    bulk_create(spaced(history, history_size, history_spacing_ms))
    store = resources.message_store
    _check_seeded(store, history, list(itertools.islice(spaced(history, history_size, history_spacing_ms), 3)))

    sparse_entries = list(spaced(sparse, HISTORY_YEARS * 365 // SPARSE_INTERVAL_DAYS, SPARSE_INTERVAL_DAYS * DAY_MS))
    for channel_id, message_id, author_id, content in sparse_entries:
        store.create_message(Message(id=message_id, channel_id=channel_id, author_id=author_id, content=content))

    latest_history = store.list_messages(history, limit=REACTION_TARGETS)
    return SeededService(
        tokens=[actor.token for actor in actors], guild_id=guild_id, fresh_channels=fresh, hot_channel=hot,
        hot_write_channel=hot_write, history_channel=history, sparse_channel=sparse,
        deep_cursors=_cursors(now_ms - DEEP_YEARS_BACK * YEAR_MS),
        around_cursors=_cursors(now_ms - AROUND_YEARS_BACK * YEAR_MS),
        reaction_targets=[f"{history}/{m.id}" for m in latest_history],
        history_size=history_size, sparse_size=len(sparse_entries), seconds=time.monotonic() - started,
    )


def _cursors(around_ms: int) -> list[int]:
    """CURSORS snowflakes an hour apart from ``around_ms``."""
    return [snowflake_from_ms(around_ms + n * 3600_000) for n in range(CURSORS)]


def _bulk_creator(resources):
    """A function writing plain messages (author and content only) in batches through the database driver:
    building Message objects and SQLAlchemy's per-row parameter handling would take minutes for a million."""
    engine = resources.engine
    table = StoredMessage.__table__
    columns = [column.name for column in table.columns]
    names = ", ".join(columns)
    if engine.dialect.name == "postgresql":
        def insert_rows(cursor, rows):
            # COPY is PostgreSQL's bulk path; in its CSV form an unquoted empty field is NULL.
            text = io.StringIO()
            csv.writer(text).writerows(rows)
            text.seek(0)
            cursor.copy_expert(f"COPY {table.name} ({names}) FROM STDIN WITH (FORMAT csv)", text)
    else:
        def insert_rows(cursor, rows):
            cursor.executemany(f"INSERT INTO {table.name} ({names}) VALUES ({', '.join('?' * len(columns))})", rows)

    # What the message store writes for a plain message: the Message defaults, empty mention lists as NULL.
    defaults = {field.name: field.default for field in dataclasses.fields(Message)
                if field.default is not dataclasses.MISSING}
    defaults.update(mentions=None, mention_roles=None)
    leading = ["channel_id", "bucket", "message_id", "author_id", "content"]
    if columns[:len(leading)] != leading:
        raise RuntimeError(f"the messages table's columns start {columns[:len(leading)]}, not {leading}")
    trailing_defaults = tuple(defaults[column] for column in columns[len(leading):])

    if "" in trailing_defaults:
        raise RuntimeError("an empty string default would be written as NULL by COPY")

    def row(channel_id: int, message_id: int, author_id: int, content: str) -> tuple:
        return (channel_id, bucket_of(message_id), message_id, author_id, content) + trailing_defaults

    def write(rows: list[tuple]) -> None:
        buckets = {(values[0], values[1]) for values in rows}
        with engine.begin() as connection:
            cursor = connection.connection.cursor()
            try:
                insert_rows(cursor, rows)
            finally:
                cursor.close()
            connection.execute(_UPSERT_INSERTS[engine.dialect.name](ChannelBucket.__table__).on_conflict_do_nothing(),
                               [{"channel_id": channel, "bucket": bucket} for channel, bucket in buckets])

    def bulk_create(entries: Iterable[Entry]) -> None:
        """Write (channel_id, message_id, author_id, content) entries."""
        for batch in _batched(entries):
            write([row(*entry) for entry in batch])

    return bulk_create


def _batched(entries):
    """Lists of BATCH entries (itertools.batched arrives with Python 3.12)."""
    iterator = iter(entries)
    while batch := list(itertools.islice(iterator, BATCH)):
        yield batch


def _check_seeded(store: MessageStore, channel_id: int, newest: list[Entry]) -> None:
    """The store reads back, field for field, what the batches wrote."""
    expected = [Message(id=message_id, channel_id=channel, author_id=author_id, content=content)
                for channel, message_id, author_id, content in newest]
    found = store.list_messages(channel_id, limit=len(expected))
    if found != expected:
        raise RuntimeError(f"seeded history does not read back through the store:\n{found}\n!=\n{expected}")

