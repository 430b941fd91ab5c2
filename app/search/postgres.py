"""The PostgreSQL engine (SEARCH_ENGINE=postgres): full text with ``tsvector``, a GIN index and
``websearch_to_tsquery``, as Zulip and Synapse search at scale, in the metadata database (tables of migration
0009; its text search configuration ``chatstore_search`` stems English without stop words).

Batches are one statement per kind of change: documents go in through ``unnest`` of arrays, so a batch of 500
costs one round trip, not 500. The connection is the application's pool (psycopg2 made cooperative by psycogreen),
so a query waits without stopping the hub.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy import exc as sa_exc

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
from models.base import DATABASE_UNAVAILABLE, READ_ONLY, single_statements

CONFIGURATION = "chatstore_search"
_COLUMNS = "message_id, guild_id, channel_id, author_id, author_type, has_bits, pinned, mention_everyone, mentions, " \
           "version, body"
_UNNESTED = f"""
    SELECT u.message_id, u.guild_id, u.channel_id, u.author_id, u.author_type, u.has_bits, u.pinned,
           u.mention_everyone, u.mentions::bigint[], u.version, to_tsvector('{CONFIGURATION}', u.body)
    FROM unnest(CAST(:message_ids AS bigint[]), CAST(:guild_ids AS bigint[]), CAST(:channel_ids AS bigint[]),
                CAST(:author_ids AS bigint[]), CAST(:author_types AS smallint[]), CAST(:has_bits AS integer[]),
                CAST(:pinned AS boolean[]), CAST(:mention_everyone AS boolean[]), CAST(:mentions AS text[]),
                CAST(:versions AS bigint[]), CAST(:bodies AS text[]))
         AS u(message_id, guild_id, channel_id, author_id, author_type, has_bits, pinned, mention_everyone,
              mentions, version, body)
    WHERE NOT EXISTS (SELECT 1 FROM search_tombstones t WHERE t.message_id = u.message_id)"""
_UPSERT = text(f"""
    INSERT INTO search_documents ({_COLUMNS}) {_UNNESTED}
    ON CONFLICT (message_id) DO UPDATE SET
        channel_id = excluded.channel_id, author_id = excluded.author_id, author_type = excluded.author_type,
        has_bits = excluded.has_bits, pinned = excluded.pinned, mention_everyone = excluded.mention_everyone,
        mentions = excluded.mentions, version = excluded.version, body = excluded.body
    WHERE search_documents.version <= excluded.version""")
_ADD_MISSING = text(f"INSERT INTO search_documents ({_COLUMNS}) {_UNNESTED} ON CONFLICT (message_id) DO NOTHING")
_GUILD_COLUMNS = "guild_id, state, documents_indexed, channel_cursor, message_cursor, owner, started_at, heartbeat_at"


def _arrays(documents: Sequence[SearchDocument]) -> dict[str, list]:
    return {
        "message_ids": [d.message_id for d in documents], "guild_ids": [d.guild_id for d in documents],
        "channel_ids": [d.channel_id for d in documents], "author_ids": [d.author_id for d in documents],
        "author_types": [int(d.author_type) for d in documents], "has_bits": [int(d.has) for d in documents],
        "pinned": [d.pinned for d in documents], "mention_everyone": [d.mention_everyone for d in documents],
        "mentions": ["{" + ",".join(map(str, d.mentions)) + "}" for d in documents],
        "versions": [d.version for d in documents], "bodies": [d.text for d in documents],
    }


def _latest(documents: list[SearchDocument]) -> list[SearchDocument]:
    """One document per message (one statement cannot update a row twice): the newest version, the last of
    equals, as applying them one by one would leave."""
    kept: dict[int, SearchDocument] = {}
    for document in documents:
        seen = kept.get(document.message_id)
        if seen is None or seen.version <= document.version:
            kept[document.message_id] = document
    return list(kept.values())


def _guild(row: Any) -> GuildIndex | None:
    if row is None:
        return None
    return GuildIndex(guild_id=row.guild_id, state=IndexState(row.state), documents_indexed=row.documents_indexed,
                      channel_cursor=row.channel_cursor, message_cursor=row.message_cursor, owner=row.owner,
                      started_at=row.started_at, heartbeat_at=row.heartbeat_at)


class PostgresSearchEngine(SearchEngine):
    name = "postgres"

    def __init__(self, engine: Engine):
        self.engine = engine
        self._read_engine = engine.execution_options(**READ_ONLY)

    def _transaction(self, *, read_only: bool = False):
        return _Transaction((self._read_engine if read_only else self.engine).begin())

    # -- writing ---------------------------------------------------------------------------------------------

    def apply(self, changes: Sequence[IndexChange]) -> None:
        if not changes:
            return
        if all(isinstance(change, Upsert) for change in changes):
            # The indexer's usual batch (new messages, edits) is one statement: sent on its own it costs one round
            # trip instead of three (BEGIN and COMMIT are round trips of their own), on the way to searchable.
            with _Transaction(single_statements(self.engine)) as connection:
                self._upsert(connection, [change.document for change in changes])
            return
        with self._transaction() as connection:
            upserts: list[SearchDocument] = []
            for change in changes:
                if isinstance(change, Upsert):
                    upserts.append(change.document)
                    continue
                self._upsert(connection, upserts)
                upserts = []
                if isinstance(change, Delete):
                    ids = list(change.message_ids)
                    connection.execute(text("DELETE FROM search_documents WHERE message_id = ANY(:ids)"), {"ids": ids})
                    connection.execute(text(
                        "INSERT INTO search_tombstones (message_id, deleted_at) SELECT unnest(CAST(:ids AS bigint[])), "
                        "now() ON CONFLICT (message_id) DO UPDATE SET deleted_at = excluded.deleted_at"), {"ids": ids})
                elif isinstance(change, DeleteChannel):
                    connection.execute(text("DELETE FROM search_documents WHERE channel_id = :channel"),
                                       {"channel": change.channel_id})
                elif isinstance(change, SetPins):
                    connection.execute(text(
                        "UPDATE search_documents SET pinned = message_id = ANY(:pinned) "
                        "WHERE channel_id = :channel AND pinned <> (message_id = ANY(:pinned))"),
                        {"channel": change.channel_id, "pinned": sorted(change.pinned_ids)})
                elif isinstance(change, GuildCreated):
                    connection.execute(text("INSERT INTO search_guilds (guild_id, state) VALUES (:guild, 'ready') "
                                            "ON CONFLICT (guild_id) DO NOTHING"), {"guild": change.guild_id})
            self._upsert(connection, upserts)

    @staticmethod
    def _upsert(connection: Connection, documents: list[SearchDocument]) -> None:
        if documents:
            connection.execute(_UPSERT, _arrays(_latest(documents)))

    # -- searching -------------------------------------------------------------------------------------------

    def search(self, query: SearchQuery) -> SearchResult:
        if query.matches_nothing:
            return SearchResult(total=0)
        where, parameters = ["d.guild_id = :guild"], {"guild": query.guild_id}
        source = "search_documents d"
        if query.content is not None:
            source += f", websearch_to_tsquery('{CONFIGURATION}', :content) q"
            where.append("d.body @@ q")
            parameters["content"] = query.content.websearch()
        if query.channel_ids is not None:
            where.append("d.channel_id = ANY(:channels)")
            parameters["channels"] = sorted(query.channel_ids)
        if len(query.author_ids) == 1:
            # Equality, not ANY: the author index then gives the guild's matches in id order, so the page reads
            # its 25 rows instead of every message of the author and a sort (1,000 heap rows, 4 to 9 ms, for an
            # author of one in a thousand in a guild of a million).
            where.append("d.author_id = :author")
            (parameters["author"],) = query.author_ids
        elif query.author_ids:
            where.append("d.author_id = ANY(:authors)")
            parameters["authors"] = sorted(query.author_ids)
        if query.author_types:
            where.append("d.author_type = ANY(CAST(:author_types AS smallint[]))")
            parameters["author_types"] = sorted(int(t) for t in query.author_types)
        if query.excluded_author_types:
            where.append("NOT d.author_type = ANY(CAST(:excluded_author_types AS smallint[]))")
            parameters["excluded_author_types"] = sorted(int(t) for t in query.excluded_author_types)
        if query.mentions:
            where.append("d.mentions && CAST(:mentions AS bigint[])")
            parameters["mentions"] = sorted(query.mentions)
        if query.mention_everyone is not None:
            where.append("d.mention_everyone = :everyone")
            parameters["everyone"] = query.mention_everyone
        if query.has:
            where.append("d.has_bits & :has = :has")
            parameters["has"] = int(query.has)
        if query.has_not:
            where.append("d.has_bits & :has_not = 0")
            parameters["has_not"] = int(query.has_not)
        if query.pinned is not None:
            where.append("d.pinned = :pinned")
            parameters["pinned"] = query.pinned
        if query.min_id is not None:
            where.append("d.message_id > :min_id")
            parameters["min_id"] = query.min_id
        if query.max_id is not None:
            where.append("d.message_id < :max_id")
            parameters["max_id"] = query.max_id
        condition = " AND ".join(where)
        direction = "DESC" if query.descending else "ASC"
        order = (f"ts_rank(d.body, q) {direction}, d.message_id {direction}" if query.by_relevance
                 else f"d.message_id {direction}")
        with self._transaction(read_only=True) as connection:
            rows = connection.execute(text(
                f"SELECT d.message_id, d.channel_id FROM {source} WHERE {condition} ORDER BY {order} "
                "LIMIT :limit OFFSET :offset"), {**parameters, "limit": query.limit, "offset": query.offset},
            ).all()
            # The LIMIT inside stops the count at the bound: each match counted is a visit of its heap row.
            total = bounded_total(query, len(rows), lambda bound: connection.execute(text(
                f"SELECT count(*) FROM (SELECT FROM {source} WHERE {condition} LIMIT :bound) AS matches"),
                {**parameters, "bound": bound}).scalar_one())
        return SearchResult(total=total, hits=[Hit(row.message_id, row.channel_id) for row in rows])

    # -- guild states ----------------------------------------------------------------------------------------

    def _select_guild(self, connection: Connection, guild_id: int) -> GuildIndex | None:
        return _guild(connection.execute(text(f"SELECT {_GUILD_COLUMNS} FROM search_guilds WHERE guild_id = :guild"),
                                         {"guild": guild_id}).first())

    def guild_index(self, guild_id: int) -> GuildIndex | None:
        with self._transaction(read_only=True) as connection:
            return self._select_guild(connection, guild_id)

    def count_documents(self, guild_id: int) -> int:
        with self._transaction(read_only=True) as connection:
            return connection.execute(text("SELECT count(*) FROM search_documents WHERE guild_id = :guild"),
                                      {"guild": guild_id}).scalar_one()

    def request_index(self, guild_id: int) -> GuildIndex:
        with self._transaction() as connection:
            connection.execute(text("INSERT INTO search_guilds (guild_id, state, started_at) "
                                    "VALUES (:guild, 'indexing', now()) ON CONFLICT (guild_id) DO NOTHING"),
                               {"guild": guild_id})
            return self._select_guild(connection, guild_id)

    def begin_reindex(self, guild_id: int, owner: str) -> GuildIndex:
        with self._transaction() as connection:
            connection.execute(text("DELETE FROM search_documents WHERE guild_id = :guild"), {"guild": guild_id})
            connection.execute(text(
                "INSERT INTO search_guilds (guild_id, state, documents_indexed, channel_cursor, message_cursor, owner, "
                "started_at, heartbeat_at) VALUES (:guild, 'indexing', 0, 0, 0, :owner, now(), now()) "
                "ON CONFLICT (guild_id) DO UPDATE SET state = 'indexing', documents_indexed = 0, channel_cursor = 0, "
                "message_cursor = 0, owner = :owner, started_at = now(), heartbeat_at = now()"),
                {"guild": guild_id, "owner": owner})
            return self._select_guild(connection, guild_id)

    def claim_reindex(self, owner: str, stale_seconds: float) -> GuildIndex | None:
        with self._transaction() as connection:
            row = connection.execute(text(
                "SELECT guild_id FROM search_guilds WHERE state = 'indexing' AND (owner IS NULL OR heartbeat_at < "
                "now() - make_interval(secs => :stale)) ORDER BY started_at LIMIT 1 FOR UPDATE SKIP LOCKED"),
                {"stale": stale_seconds}).first()
            if row is None:
                return None
            connection.execute(text("UPDATE search_guilds SET owner = :owner, heartbeat_at = now() "
                                    "WHERE guild_id = :guild"), {"owner": owner, "guild": row.guild_id})
            return self._select_guild(connection, row.guild_id)

    def add_missing(self, guild_id: int, documents: Sequence[SearchDocument], *, owner: str,
                    channel_cursor: int, message_cursor: int) -> int:
        with self._transaction() as connection:
            inserted = connection.execute(_ADD_MISSING, _arrays(_latest(list(documents)))).rowcount \
                if documents else 0
            connection.execute(text(
                "UPDATE search_guilds SET documents_indexed = documents_indexed + :inserted, "
                "channel_cursor = :channel_cursor, message_cursor = :message_cursor, owner = :owner, "
                "heartbeat_at = now() WHERE guild_id = :guild"),
                {"inserted": inserted, "channel_cursor": channel_cursor, "message_cursor": message_cursor,
                 "owner": owner, "guild": guild_id})
        return inserted

    def finish_reindex(self, guild_id: int) -> None:
        with self._transaction() as connection:
            connection.execute(text("UPDATE search_guilds SET state = 'ready', owner = NULL, channel_cursor = 0, "
                                    "message_cursor = 0 WHERE guild_id = :guild"), {"guild": guild_id})
            # Fresh statistics after a bulk rebuild: without them the planner intersects the whole guild's index
            # with every full-text match (measured: 0.5 s instead of 0.4 ms for a page in a guild of a million),
            # until autovacuum gets round to the table. A sample of the rows; it takes no lock writers wait for.
            connection.execute(text("ANALYZE search_documents"))

    def prune_tombstones(self, before: datetime) -> int:
        with self._transaction() as connection:
            oldest_running = connection.execute(text(
                "SELECT min(started_at) FROM search_guilds WHERE state = 'indexing'")).scalar()
            cutoff = before if oldest_running is None else min(before, oldest_running)
            return connection.execute(text("DELETE FROM search_tombstones WHERE deleted_at < :cutoff"),
                                      {"cutoff": cutoff}).rowcount

    def ping(self) -> None:
        with self._transaction(read_only=True) as connection:
            connection.execute(text("SELECT 1 FROM search_guilds LIMIT 1"))


class _Transaction:
    """A transaction (or ``single_statements``) whose operational failures are :class:`SearchUnavailable`."""

    def __init__(self, context):
        self._context = context

    def __enter__(self) -> Connection:
        try:
            return self._context.__enter__()
        except DATABASE_UNAVAILABLE as error:
            raise SearchUnavailable(f"postgres search unavailable: {type(error).__name__}") from error

    def __exit__(self, kind, error, traceback) -> bool | None:
        try:
            handled = self._context.__exit__(kind, error, traceback)
        except DATABASE_UNAVAILABLE as failure:
            raise SearchUnavailable(f"postgres search unavailable: {type(failure).__name__}") from failure
        if isinstance(error, DATABASE_UNAVAILABLE) or (
                isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated):
            raise SearchUnavailable(f"postgres search unavailable: {type(error).__name__}") from error
        return handled

