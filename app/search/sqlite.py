"""The SQLite FTS5 engine (SEARCH_ENGINE=sqlite, the embedded default), in a file of its own beside the database.

Its own file, so that indexing never takes the metadata database's only write lock from the writers, and the
index can be deleted and rebuilt (``flask search reindex``) without touching what it was built from.

Every call runs in gevent's thread pool on a connection of that thread: a full-text query over a large guild
takes milliseconds of CPU inside SQLite, which would otherwise stop the worker's hub, and SQLite releases the
GIL meanwhile, so queries use both cores. Outside gevent (the CLI, tests) calls run in the caller's thread.

Tables: ``documents`` (one row per message: the filters' columns, indexed by guild and by author, channel and
message order, and the tokens made in app.search.text), ``documents_text`` (FTS5, rowid = message id, Porter
stemming over unicode61), ``mentions``, ``tombstones`` and ``guilds`` (index states).

Each token is indexed under its guild (``g123#word``): a guild's words are terms of their own, so a content query
and its count read only that guild's postings, without looking up each match's guild (which cost 0.3 s
for 30,000 matches in a guild of a million, against 30 ms for the postings alone). Porter ignores the prefix: it
holds no vowel, so the measure of every stem is unchanged. The FTS table is contentless (the tokens are kept in
``documents``, from which a delete gives FTS5 back what it indexed).
"""
from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from gevent import monkey

from app.search.base import (
    Delete,
    DeleteChannel,
    GuildCreated,
    GuildIndex,
    Hit,
    IndexChange,
    IndexState,
    SearchDocument,
    SearchEngine,
    SearchQuery,
    SearchResult,
    SearchUnavailable,
    SetPins,
    Upsert,
    bounded_total,
)

T = TypeVar("T")
#: How long a write waits for another process's write lock (in a pool thread, so the hub runs meanwhile).
BUSY_TIMEOUT_SECONDS = 10.0
SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    message_id INTEGER PRIMARY KEY, guild_id INTEGER NOT NULL, channel_id INTEGER NOT NULL,
    author_id INTEGER NOT NULL, author_type INTEGER NOT NULL, has_bits INTEGER NOT NULL,
    pinned INTEGER NOT NULL, mention_everyone INTEGER NOT NULL, version INTEGER NOT NULL, text TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS documents_guild ON documents (guild_id, message_id);
CREATE INDEX IF NOT EXISTS documents_author ON documents (guild_id, author_id, message_id);
CREATE INDEX IF NOT EXISTS documents_channel ON documents (channel_id, message_id);
CREATE VIRTUAL TABLE IF NOT EXISTS documents_text USING fts5 (
    body, content = '', tokenize = "porter unicode61 remove_diacritics 0 tokenchars '#'");
CREATE TABLE IF NOT EXISTS mentions (
    user_id INTEGER NOT NULL, message_id INTEGER NOT NULL, PRIMARY KEY (user_id, message_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS mentions_message ON mentions (message_id);
CREATE TABLE IF NOT EXISTS tombstones (message_id INTEGER PRIMARY KEY, deleted_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS guilds (
    guild_id INTEGER PRIMARY KEY, state TEXT NOT NULL, documents_indexed INTEGER NOT NULL DEFAULT 0,
    channel_cursor INTEGER NOT NULL DEFAULT 0, message_cursor INTEGER NOT NULL DEFAULT 0, owner TEXT,
    started_at REAL, heartbeat_at REAL);
"""

_ThreadLocal = monkey.get_original("threading", "local") if monkey.is_module_patched("threading") else threading.local


def _has_filters(query: SearchQuery) -> bool:
    """Whether the query filters on more than words and id bounds (those need the documents table)."""
    return bool(query.author_ids or query.author_types or query.excluded_author_types or query.mentions
                or query.mention_everyone is not None or query.has or query.has_not or query.pinned is not None)


def _bound_ids(query: SearchQuery, column: str, where: list[str], parameters: list) -> None:
    """The query's ``min_id`` and ``max_id`` (both exclusive) as conditions on ``column``."""
    if query.min_id is not None:
        where.append(f"{column} > ?")
        parameters.append(query.min_id)
    if query.max_id is not None:
        where.append(f"{column} < ?")
        parameters.append(query.max_id)


def scoped(guild_id: int, tokens: str) -> str:
    """Tokens as the FTS table holds them: each under its guild."""
    return " ".join(f"g{guild_id}#{token}" for token in tokens.split())


def _now() -> float:
    return datetime.now(timezone.utc).timestamp()


def _moment(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, timezone.utc)


class SqliteSearchEngine(SearchEngine):
    name = "sqlite"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = _ThreadLocal()
        self._connections: list[sqlite3.Connection] = []
        self._guard = monkey.get_original("threading", "Lock")() if monkey.is_module_patched("threading") \
            else threading.Lock()
        self._generation = uuid.uuid4().hex

    # -- plumbing --------------------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None or getattr(self._local, "generation", None) != self._generation:
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                                         check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise RuntimeError(f"{self.path} is a search index of another release (schema {version}): "
                                   "delete it and run `flask search reindex`")
            if version == 0:
                connection.executescript(f"BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")
            self._local.connection = connection
            self._local.generation = self._generation
            with self._guard:
                self._connections.append(connection)
        return connection

    def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def attempt() -> T:
            try:
                return work(self._connection())
            except sqlite3.OperationalError as error:
                if "locked" in str(error) or "busy" in str(error) or "unable to open" in str(error):
                    raise SearchUnavailable(f"sqlite search index unavailable: {error}") from error
                raise

        if monkey.is_module_patched("socket"):
            import gevent

            return gevent.get_hub().threadpool.apply(attempt)
        return attempt()

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def transaction(connection: sqlite3.Connection) -> T:
            connection.execute("BEGIN IMMEDIATE")
            try:
                result = work(connection)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
            return result

        return self._run(transaction)

    # -- writing ---------------------------------------------------------------------------------------------

    def apply(self, changes: Sequence[IndexChange]) -> None:
        if changes:
            self._write(lambda connection: self._apply(connection, changes))

    def _apply(self, connection: sqlite3.Connection, changes: Sequence[IndexChange]) -> None:
        now = _now()
        for change in changes:
            if isinstance(change, Upsert):
                document = change.document
                if connection.execute("SELECT 1 FROM tombstones WHERE message_id = ?",
                                      (document.message_id,)).fetchone():
                    continue
                found = connection.execute("SELECT version FROM documents WHERE message_id = ?",
                                           (document.message_id,)).fetchone()
                if found is not None:
                    if found[0] > document.version:
                        continue
                    self._remove(connection, (document.message_id,))
                self._insert(connection, [document])
            elif isinstance(change, Delete):
                self._remove(connection, change.message_ids)
                connection.executemany("INSERT OR REPLACE INTO tombstones (message_id, deleted_at) VALUES (?, ?)",
                                       [(message_id, now) for message_id in change.message_ids])
            elif isinstance(change, DeleteChannel):
                ids = [row[0] for row in connection.execute(
                    "SELECT message_id FROM documents WHERE channel_id = ?", (change.channel_id,))]
                self._remove(connection, ids)
            elif isinstance(change, SetPins):
                connection.execute("UPDATE documents SET pinned = 0 WHERE channel_id = ? AND pinned = 1",
                                   (change.channel_id,))
                connection.executemany("UPDATE documents SET pinned = 1 WHERE message_id = ? AND channel_id = ?",
                                       [(message_id, change.channel_id) for message_id in change.pinned_ids])
            elif isinstance(change, GuildCreated):
                connection.execute("INSERT OR IGNORE INTO guilds (guild_id, state) VALUES (?, ?)",
                                   (change.guild_id, IndexState.READY.value))

    @staticmethod
    def _insert(connection: sqlite3.Connection, documents: Sequence[SearchDocument]) -> None:
        connection.executemany(
            "INSERT INTO documents (message_id, guild_id, channel_id, author_id, author_type, has_bits, pinned, "
            "mention_everyone, version, text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(d.message_id, d.guild_id, d.channel_id, d.author_id, int(d.author_type), int(d.has), int(d.pinned),
              int(d.mention_everyone), d.version, d.text) for d in documents])
        connection.executemany("INSERT INTO documents_text (rowid, body) VALUES (?, ?)",
                               [(d.message_id, scoped(d.guild_id, d.text)) for d in documents])
        connection.executemany("INSERT OR IGNORE INTO mentions (user_id, message_id) VALUES (?, ?)",
                               [(user_id, d.message_id) for d in documents for user_id in d.mentions])

    @staticmethod
    def _remove(connection: sqlite3.Connection, message_ids: Sequence[int]) -> None:
        indexed = []
        for start in range(0, len(message_ids), 500):
            chunk = list(message_ids[start:start + 500])
            indexed.extend(connection.execute(
                f"SELECT message_id, guild_id, text FROM documents WHERE message_id IN ({', '.join('?' * len(chunk))})",
                chunk).fetchall())
        # A contentless table forgets a row when told exactly what it indexed for it.
        connection.executemany("INSERT INTO documents_text (documents_text, rowid, body) VALUES ('delete', ?, ?)",
                               [(message_id, scoped(guild_id, text)) for message_id, guild_id, text in indexed])
        rows = [(message_id,) for message_id, _, _ in indexed]
        connection.executemany("DELETE FROM documents WHERE message_id = ?", rows)
        connection.executemany("DELETE FROM mentions WHERE message_id = ?", rows)

    # -- searching -------------------------------------------------------------------------------------------

    def search(self, query: SearchQuery) -> SearchResult:
        if query.matches_nothing:
            return SearchResult(total=0)
        return self._run(lambda connection: self._search(connection, query))

    @staticmethod
    def _search(connection: sqlite3.Connection, query: SearchQuery) -> SearchResult:
        direction = "DESC" if query.descending else "ASC"
        # bm25 is lower for better matches: "descending" relevance is bm25 ascending.
        relevance = f"bm25(documents_text) {'ASC' if query.descending else 'DESC'}"
        if query.content is not None and query.channel_ids is None and not _has_filters(query):
            return SqliteSearchEngine._search_text(connection, query, direction, relevance)
        where, parameters = ["d.guild_id = ?"], [query.guild_id]

        def any_of(column: str, values) -> None:
            where.append(f"{column} IN ({', '.join('?' * len(values))})")
            parameters.extend(sorted(values))

        source = "documents d"
        if query.content is not None:
            # CROSS JOIN makes the full-text index drive (SQLite keeps the left table outermost): the planner
            # otherwise walks the guild's documents and evaluates MATCH for each, seconds for a large guild.
            source = "documents_text t CROSS JOIN documents d ON d.message_id = t.rowid"
            where.append("documents_text MATCH ?")
            parameters.append(query.content.fts5(prefix=f"g{query.guild_id}#"))
        if query.channel_ids is not None:
            any_of("d.channel_id", query.channel_ids)
        if query.author_ids:
            any_of("d.author_id", query.author_ids)
        if query.author_types:
            any_of("d.author_type", [int(t) for t in query.author_types])
        if query.excluded_author_types:
            where.append(f"d.author_type NOT IN ({', '.join('?' * len(query.excluded_author_types))})")
            parameters.extend(sorted(int(t) for t in query.excluded_author_types))
        if query.mentions:
            where.append(f"d.message_id IN (SELECT message_id FROM mentions WHERE user_id IN "
                         f"({', '.join('?' * len(query.mentions))}))")
            parameters.extend(sorted(query.mentions))
        if query.mention_everyone is not None:
            where.append("d.mention_everyone = ?")
            parameters.append(int(query.mention_everyone))
        if query.has:
            where.append("d.has_bits & ? = ?")
            parameters.extend([int(query.has), int(query.has)])
        if query.has_not:
            where.append("d.has_bits & ? = 0")
            parameters.append(int(query.has_not))
        if query.pinned is not None:
            where.append("d.pinned = ?")
            parameters.append(int(query.pinned))
        _bound_ids(query, "d.message_id", where, parameters)
        condition = " AND ".join(where)
        order = f"{relevance}, d.message_id {direction}" if query.by_relevance else f"d.message_id {direction}"
        rows = connection.execute(
            f"SELECT d.message_id, d.channel_id FROM {source} WHERE {condition} ORDER BY {order} LIMIT ? OFFSET ?",
            [*parameters, query.limit, query.offset]).fetchall()
        total = bounded_total(query, len(rows), lambda bound: connection.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {source} WHERE {condition} LIMIT ?)", [*parameters, bound],
        ).fetchone()[0])
        return SearchResult(total=total, hits=[Hit(message_id, channel_id) for message_id, channel_id in rows])

    @staticmethod
    def _search_text(connection: sqlite3.Connection, query: SearchQuery, direction: str,
                     relevance: str) -> SearchResult:
        """Words (and id bounds) alone in the whole guild: the guild's postings answer, count included, and only
        the page's rows are looked up for their channel."""
        where, parameters = ["documents_text MATCH ?"], [query.content.fts5(prefix=f"g{query.guild_id}#")]
        _bound_ids(query, "rowid", where, parameters)
        condition = " AND ".join(where)
        order = f"{relevance}, rowid {direction}" if query.by_relevance else f"rowid {direction}"
        ids = [row[0] for row in connection.execute(
            f"SELECT rowid FROM documents_text WHERE {condition} ORDER BY {order} LIMIT ? OFFSET ?",
            [*parameters, query.limit, query.offset])]
        total = bounded_total(query, len(ids), lambda bound: connection.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM documents_text WHERE {condition} LIMIT ?)", [*parameters, bound],
        ).fetchone()[0])
        if not ids:
            return SearchResult(total=total)
        channels = dict(connection.execute(
            f"SELECT message_id, channel_id FROM documents WHERE message_id IN ({', '.join('?' * len(ids))})", ids))
        return SearchResult(total=total, hits=[Hit(i, channels[i]) for i in ids if i in channels])

    # -- guild states ----------------------------------------------------------------------------------------

    @staticmethod
    def _guild(row: Any) -> GuildIndex | None:
        if row is None:
            return None
        guild_id, state, indexed, channel_cursor, message_cursor, owner, started_at, heartbeat_at = row
        return GuildIndex(guild_id=guild_id, state=IndexState(state), documents_indexed=indexed,
                          channel_cursor=channel_cursor, message_cursor=message_cursor, owner=owner,
                          started_at=_moment(started_at), heartbeat_at=_moment(heartbeat_at))

    _GUILD_COLUMNS = ("guild_id, state, documents_indexed, channel_cursor, message_cursor, owner, started_at, "
                      "heartbeat_at")

    def guild_index(self, guild_id: int) -> GuildIndex | None:
        return self._run(lambda connection: self._guild(connection.execute(
            f"SELECT {self._GUILD_COLUMNS} FROM guilds WHERE guild_id = ?", (guild_id,)).fetchone()))

    def count_documents(self, guild_id: int) -> int:
        return self._run(lambda connection: connection.execute(
            "SELECT count(*) FROM documents WHERE guild_id = ?", (guild_id,)).fetchone()[0])

    def request_index(self, guild_id: int) -> GuildIndex:
        def request(connection: sqlite3.Connection) -> GuildIndex:
            connection.execute("INSERT OR IGNORE INTO guilds (guild_id, state, started_at) VALUES (?, ?, ?)",
                               (guild_id, IndexState.INDEXING.value, _now()))
            return self._guild(connection.execute(
                f"SELECT {self._GUILD_COLUMNS} FROM guilds WHERE guild_id = ?", (guild_id,)).fetchone())

        return self._write(request)

    def begin_reindex(self, guild_id: int, owner: str) -> GuildIndex:
        def begin(connection: sqlite3.Connection) -> GuildIndex:
            ids = [row[0] for row in connection.execute("SELECT message_id FROM documents WHERE guild_id = ?",
                                                        (guild_id,))]
            self._remove(connection, ids)
            now = _now()
            connection.execute(
                "INSERT OR REPLACE INTO guilds (guild_id, state, documents_indexed, channel_cursor, message_cursor, "
                "owner, started_at, heartbeat_at) VALUES (?, ?, 0, 0, 0, ?, ?, ?)",
                (guild_id, IndexState.INDEXING.value, owner, now, now))
            return self._guild(connection.execute(
                f"SELECT {self._GUILD_COLUMNS} FROM guilds WHERE guild_id = ?", (guild_id,)).fetchone())

        return self._write(begin)

    def claim_reindex(self, owner: str, stale_seconds: float) -> GuildIndex | None:
        def claim(connection: sqlite3.Connection) -> GuildIndex | None:
            now = _now()
            row = connection.execute(
                f"SELECT {self._GUILD_COLUMNS} FROM guilds WHERE state = ? AND (owner IS NULL OR heartbeat_at < ?) "
                "ORDER BY started_at LIMIT 1", (IndexState.INDEXING.value, now - stale_seconds)).fetchone()
            if row is None:
                return None
            connection.execute("UPDATE guilds SET owner = ?, heartbeat_at = ? WHERE guild_id = ?",
                               (owner, now, row[0]))
            return self._guild(connection.execute(
                f"SELECT {self._GUILD_COLUMNS} FROM guilds WHERE guild_id = ?", (row[0],)).fetchone())

        return self._write(claim)

    def add_missing(self, guild_id: int, documents: Sequence[SearchDocument], *, owner: str,
                    channel_cursor: int, message_cursor: int) -> int:
        def add(connection: sqlite3.Connection) -> int:
            ids = [d.message_id for d in documents]
            present: set[int] = set()
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ", ".join("?" * len(chunk))
                present.update(row[0] for row in connection.execute(
                    f"SELECT message_id FROM documents WHERE message_id IN ({marks}) UNION ALL "
                    f"SELECT message_id FROM tombstones WHERE message_id IN ({marks})", chunk + chunk))
            missing = [d for d in documents if d.message_id not in present]
            self._insert(connection, missing)
            connection.execute(
                "UPDATE guilds SET documents_indexed = documents_indexed + ?, channel_cursor = ?, message_cursor = ?, "
                "owner = ?, heartbeat_at = ? WHERE guild_id = ?",
                (len(missing), channel_cursor, message_cursor, owner, _now(), guild_id))
            return len(missing)

        return self._write(add)

    def finish_reindex(self, guild_id: int) -> None:
        self._write(lambda connection: connection.execute(
            "UPDATE guilds SET state = ?, owner = NULL, channel_cursor = 0, message_cursor = 0 WHERE guild_id = ?",
            (IndexState.READY.value, guild_id)))

    def prune_tombstones(self, before: datetime) -> int:
        def prune(connection: sqlite3.Connection) -> int:
            oldest_running = connection.execute("SELECT min(started_at) FROM guilds WHERE state = ?",
                                                (IndexState.INDEXING.value,)).fetchone()[0]
            cutoff = min(before.timestamp(), oldest_running) if oldest_running is not None else before.timestamp()
            return connection.execute("DELETE FROM tombstones WHERE deleted_at < ?", (cutoff,)).rowcount

        return self._write(prune)

    def ping(self) -> None:
        self._run(lambda connection: connection.execute("SELECT 1").fetchone())

    def close(self) -> None:
        with self._guard:
            connections, self._connections = self._connections, []
        self._generation = uuid.uuid4().hex
        for connection in connections:
            connection.close()
