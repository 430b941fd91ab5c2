"""The Elasticsearch engine (SEARCH_ENGINE=elasticsearch), for deployments that outgrow one database, through the
official client (elasticsearch-py; a client of the server's major version). Its conformance suite runs when
TEST_ELASTICSEARCH_URL names a server (no Elasticsearch server can be installed on this project's machines).

Three indexes, named from SEARCH_ELASTICSEARCH_INDEX (``NAME``): ``NAME`` (the documents, created from the index
template ``NAME-template`` with the mapping; routed by guild, so a guild's search asks one shard), ``NAME-tombstones``
and ``NAME-guilds`` (index states and reindex checkpoints). The content field is analysed by whitespace and
Porter stemming only: the tokens are made in Python (app.search.text), the same as for the other engines.

Versions are Elasticsearch's own external versions (``external_gte``): a late event with an older edit is refused
by the server. Writes are bulk requests. Unlike the SQL engines there is no transaction across indexes: a
reindex batch is written with ``create`` (never a duplicate), then its count and checkpoint; a crash between the
two re-reads that batch on resume and may undercount ``documents_indexed`` by at most one batch, never index
twice. Deletes and channel deletes are by query, across the guild's shard and any other.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from app.search.base import (
    TOTAL_LIMIT,
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
)

REQUEST_TIMEOUT_SECONDS = 10
MAPPING = {
    "dynamic": "strict",
    "properties": {
        "message_id": {"type": "long"}, "guild_id": {"type": "long"}, "channel_id": {"type": "long"},
        "author_id": {"type": "long"}, "author_type": {"type": "byte"}, "has_bits": {"type": "integer"},
        "pinned": {"type": "boolean"}, "mention_everyone": {"type": "boolean"}, "mentions": {"type": "long"},
        "body": {"type": "text", "analyzer": "chatstore"},
    },
}
ANALYSIS = {"analyzer": {"chatstore": {"type": "custom", "tokenizer": "whitespace", "filter": ["porter_stem"]}}}


def _unavailable(error: Exception) -> SearchUnavailable:
    return SearchUnavailable(f"elasticsearch unavailable: {type(error).__name__}: {error}")


def _source(document: SearchDocument) -> dict[str, Any]:
    return {"message_id": document.message_id, "guild_id": document.guild_id, "channel_id": document.channel_id,
            "author_id": document.author_id, "author_type": int(document.author_type), "has_bits": int(document.has),
            "pinned": document.pinned, "mention_everyone": document.mention_everyone,
            "mentions": list(document.mentions), "body": document.text}


def _moment(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


class ElasticsearchSearchEngine(SearchEngine):
    name = "elasticsearch"

    def __init__(self, client, index: str, *, refresh: bool = False):
        """``refresh`` makes every write visible before it returns (tests); otherwise the index's refresh
        interval (1 s) bounds how late a write shows."""
        from elasticsearch import ApiError, TransportError

        self.client = client
        self.index = index
        self.tombstones = f"{index}-tombstones"
        self.guilds = f"{index}-guilds"
        self.refresh = "wait_for" if refresh else False
        self._failures = (TransportError,)
        self._api_error = ApiError
        self._ready = False

    @classmethod
    def from_url(cls, url: str, index: str, *, refresh: bool = False) -> ElasticsearchSearchEngine:
        from elasticsearch import Elasticsearch

        return cls(Elasticsearch(url, request_timeout=REQUEST_TIMEOUT_SECONDS, retry_on_timeout=True, max_retries=2),
                   index, refresh=refresh)

    def _call(self, method, *args, **kwargs):
        self._ensure_indexes()
        try:
            return method(*args, **kwargs)
        except self._failures as error:
            raise _unavailable(error) from error
        except self._api_error as error:
            if error.status_code in (429, 502, 503, 504):
                raise _unavailable(error) from error
            raise

    def _ensure_indexes(self) -> None:
        """The template and the three indexes, once per process (idempotent on the server)."""
        if self._ready:
            return
        try:
            self.client.indices.put_index_template(
                name=f"{self.index}-template", index_patterns=[self.index],
                template={"settings": {"analysis": ANALYSIS}, "mappings": MAPPING})
            for name, mappings in ((self.index, None), (self.tombstones, {"properties": {"deleted_at": {
                    "type": "date"}}}), (self.guilds, {"properties": {"state": {"type": "keyword"}, "owner": {
                    "type": "keyword"}, "started_at": {"type": "date"}, "heartbeat_at": {"type": "date"}}})):
                if not self.client.indices.exists(index=name):
                    self.client.options(ignore_status=400).indices.create(index=name, mappings=mappings)
        except self._failures as error:
            raise _unavailable(error) from error
        self._ready = True

    # -- writing ---------------------------------------------------------------------------------------------

    def apply(self, changes: Sequence[IndexChange]) -> None:
        upserts: list[SearchDocument] = []
        for change in changes:
            if isinstance(change, Upsert):
                upserts.append(change.document)
                continue
            self._upsert(upserts)
            upserts = []
            if isinstance(change, Delete):
                now = datetime.now(timezone.utc).isoformat()
                self._bulk([{"index": {"_index": self.tombstones, "_id": str(i)}} if n == 0 else {"deleted_at": now}
                            for i in change.message_ids for n in (0, 1)])
                self._call(self.client.delete_by_query, index=self.index, query={"ids": {"values": [
                    str(i) for i in change.message_ids]}}, refresh=bool(self.refresh), conflicts="proceed")
            elif isinstance(change, DeleteChannel):
                self._call(self.client.delete_by_query, index=self.index,
                           query={"term": {"channel_id": change.channel_id}}, refresh=bool(self.refresh),
                           conflicts="proceed")
            elif isinstance(change, SetPins):
                self._call(self.client.update_by_query, index=self.index, query={"term": {
                    "channel_id": change.channel_id}}, conflicts="proceed", refresh=bool(self.refresh), script={
                    "source": "ctx._source.pinned = params.pinned.contains(ctx._source.message_id)",
                    "params": {"pinned": sorted(change.pinned_ids)}})
            elif isinstance(change, GuildCreated):
                self._call(self.client.options(ignore_status=409).create, index=self.guilds,
                           id=str(change.guild_id), document={"state": IndexState.READY.value},
                           refresh=self.refresh)
        self._upsert(upserts)

    def _tombstoned(self, message_ids: list[int]) -> set[int]:
        if not message_ids:
            return set()
        found = self._call(self.client.mget, index=self.tombstones, ids=[str(i) for i in message_ids],
                           source=False)
        return {int(doc["_id"]) for doc in found["docs"] if doc.get("found")}

    def _upsert(self, documents: list[SearchDocument]) -> None:
        if not documents:
            return
        gone = self._tombstoned([d.message_id for d in documents])
        actions: list[dict] = []
        for document in documents:
            if document.message_id in gone:
                continue
            actions.append({"index": {"_index": self.index, "_id": str(document.message_id),
                                      "routing": str(document.guild_id), "version": document.version,
                                      "version_type": "external_gte"}})
            actions.append(_source(document))
        self._bulk(actions, ignored=(409,))

    def _bulk(self, actions: list[dict], ignored: tuple[int, ...] = ()) -> list[dict]:
        """Run a bulk request; return its items. An item failing for a reason other than ``ignored`` fails it."""
        if not actions:
            return []
        answer = self._call(self.client.bulk, operations=actions, refresh=self.refresh)
        items = [next(iter(item.values())) for item in answer["items"]]
        failed = [item for item in items if item.get("error") and item.get("status") not in ignored]
        if failed:
            if any(item.get("status", 500) >= 500 or item.get("status") == 429 for item in failed):
                raise SearchUnavailable(f"elasticsearch refused {len(failed)} bulk items: {failed[0]['error']}")
            raise RuntimeError(f"elasticsearch refused {len(failed)} bulk items: {failed[0]['error']}")
        return items

    # -- searching -------------------------------------------------------------------------------------------

    def search(self, query: SearchQuery) -> SearchResult:
        if query.matches_nothing:
            return SearchResult(total=0)
        filters: list[dict] = [{"term": {"guild_id": query.guild_id}}]
        must_not: list[dict] = []
        if query.channel_ids is not None:
            filters.append({"terms": {"channel_id": sorted(query.channel_ids)}})
        if query.author_ids:
            filters.append({"terms": {"author_id": sorted(query.author_ids)}})
        if query.author_types:
            filters.append({"terms": {"author_type": sorted(int(t) for t in query.author_types)}})
        if query.excluded_author_types:
            must_not.append({"terms": {"author_type": sorted(int(t) for t in query.excluded_author_types)}})
        if query.mentions:
            filters.append({"terms": {"mentions": sorted(query.mentions)}})
        if query.mention_everyone is not None:
            filters.append({"term": {"mention_everyone": query.mention_everyone}})
        # Elasticsearch has no bitwise filter but a script, which scans; with eight flags, has_bits is matched
        # against the list of every value that has the wanted bits and none of the unwanted ones.
        if query.has or query.has_not:
            allowed = [value for value in range(256)
                       if value & int(query.has) == int(query.has) and not value & int(query.has_not)]
            filters.append({"terms": {"has_bits": allowed}})
        if query.pinned is not None:
            filters.append({"term": {"pinned": query.pinned}})
        bounds = {}
        if query.min_id is not None:
            bounds["gt"] = query.min_id
        if query.max_id is not None:
            bounds["lt"] = query.max_id
        if bounds:
            filters.append({"range": {"message_id": bounds}})
        boolean: dict[str, Any] = {"filter": filters, "must_not": must_not}
        if query.content is not None:
            boolean["must"] = [{"simple_query_string": {"query": query.content.simple_query_string(),
                                                        "fields": ["body"], "default_operator": "and"}}]
        order = "desc" if query.descending else "asc"
        sort = ([{"_score": order}, {"message_id": order}] if query.by_relevance else [{"message_id": order}])
        answer = self._call(self.client.search, index=self.index, routing=str(query.guild_id),
                            query={"bool": boolean}, sort=sort, from_=query.offset, size=query.limit,
                            track_total_hits=TOTAL_LIMIT, source_includes=["channel_id"])
        hits = [Hit(int(hit["_id"]), hit["_source"]["channel_id"]) for hit in answer["hits"]["hits"]]
        return SearchResult(total=answer["hits"]["total"]["value"], hits=hits)

    # -- guild states ----------------------------------------------------------------------------------------

    def _guild(self, guild_id: int, source: dict | None) -> GuildIndex | None:
        if source is None:
            return None
        return GuildIndex(guild_id=guild_id, state=IndexState(source["state"]),
                          documents_indexed=source.get("documents_indexed", 0),
                          channel_cursor=source.get("channel_cursor", 0),
                          message_cursor=source.get("message_cursor", 0),
                          owner=source.get("owner"), started_at=_moment(source.get("started_at")),
                          heartbeat_at=_moment(source.get("heartbeat_at")))

    def guild_index(self, guild_id: int) -> GuildIndex | None:
        found = self._call(self.client.options(ignore_status=404).get, index=self.guilds, id=str(guild_id),
                           realtime=True).body
        return self._guild(guild_id, found.get("_source") if found.get("found") else None)

    def count_documents(self, guild_id: int) -> int:
        return self._call(self.client.count, index=self.index, routing=str(guild_id),
                          query={"term": {"guild_id": guild_id}})["count"]

    def request_index(self, guild_id: int) -> GuildIndex:
        now = datetime.now(timezone.utc).isoformat()
        self._call(self.client.options(ignore_status=409).create, index=self.guilds, id=str(guild_id),
                   document={"state": IndexState.INDEXING.value, "documents_indexed": 0, "started_at": now},
                   refresh=self.refresh)
        return self.guild_index(guild_id)

    def begin_reindex(self, guild_id: int, owner: str) -> GuildIndex:
        self._call(self.client.delete_by_query, index=self.index, routing=str(guild_id),
                   query={"term": {"guild_id": guild_id}}, refresh=True, conflicts="proceed")
        now = datetime.now(timezone.utc).isoformat()
        self._call(self.client.index, index=self.guilds, id=str(guild_id), refresh=self.refresh, document={
            "state": IndexState.INDEXING.value, "documents_indexed": 0, "channel_cursor": 0, "message_cursor": 0,
            "owner": owner, "started_at": now, "heartbeat_at": now})
        return self.guild_index(guild_id)

    def claim_reindex(self, owner: str, stale_seconds: float) -> GuildIndex | None:
        now = datetime.now(timezone.utc)
        stale = (now - timedelta(seconds=stale_seconds)).isoformat()
        candidates = self._call(self.client.search, index=self.guilds, seq_no_primary_term=True, size=10, query={
            "bool": {"filter": [{"term": {"state": IndexState.INDEXING.value}}], "should": [
                {"bool": {"must_not": {"exists": {"field": "owner"}}}},
                {"range": {"heartbeat_at": {"lt": stale}}}], "minimum_should_match": 1}},
            sort=[{"started_at": {"order": "asc", "missing": "_first"}}])
        for hit in candidates["hits"]["hits"]:
            source = {**hit["_source"], "owner": owner, "heartbeat_at": now.isoformat()}
            # Compare-and-set on the document's sequence number: of two claimers, one wins.
            answer = self._call(self.client.options(ignore_status=409).index, index=self.guilds, id=hit["_id"],
                                document=source, if_seq_no=hit["_seq_no"], if_primary_term=hit["_primary_term"],
                                refresh=self.refresh).body
            if answer.get("result") in ("created", "updated"):
                return self._guild(int(hit["_id"]), source)
        return None

    def add_missing(self, guild_id: int, documents: Sequence[SearchDocument], *, owner: str,
                    channel_cursor: int, message_cursor: int) -> int:
        gone = self._tombstoned([d.message_id for d in documents])
        actions: list[dict] = []
        for document in documents:
            if document.message_id not in gone:
                actions.append({"create": {"_index": self.index, "_id": str(document.message_id),
                                           "routing": str(guild_id)}})
                actions.append(_source(document))
        items = self._bulk(actions, ignored=(409,))
        inserted = sum(1 for item in items if item.get("result") == "created")
        self._call(self.client.update, index=self.guilds, id=str(guild_id), refresh=self.refresh, script={
            "source": "ctx._source.documents_indexed += params.inserted; ctx._source.channel_cursor = params.channel;"
                      " ctx._source.message_cursor = params.message; ctx._source.owner = params.owner;"
                      " ctx._source.heartbeat_at = params.now",
            "params": {"inserted": inserted, "channel": channel_cursor, "message": message_cursor, "owner": owner,
                       "now": datetime.now(timezone.utc).isoformat()}})
        return inserted

    def finish_reindex(self, guild_id: int) -> None:
        self._call(self.client.update, index=self.guilds, id=str(guild_id), refresh=self.refresh, script={
            "source": "ctx._source.state = params.state; ctx._source.owner = null; ctx._source.channel_cursor = 0;"
                      " ctx._source.message_cursor = 0", "params": {"state": IndexState.READY.value}})

    def prune_tombstones(self, before: datetime) -> int:
        running = self._call(self.client.search, index=self.guilds, size=1, query={"term": {
            "state": IndexState.INDEXING.value}}, sort=[{"started_at": "asc"}])["hits"]["hits"]
        started = _moment(running[0]["_source"].get("started_at")) if running else None
        cutoff = before if started is None else min(before, started)
        return self._call(self.client.delete_by_query, index=self.tombstones, refresh=bool(self.refresh),
                          query={"range": {"deleted_at": {"lt": cutoff.isoformat()}}},
                          conflicts="proceed")["deleted"]

    def ping(self) -> None:
        try:
            self.client.info()
        except self._failures as error:
            raise _unavailable(error) from error

    def drop(self) -> None:
        """Delete the indexes and the template (tests)."""
        for name in (self.index, self.tombstones, self.guilds):
            self.client.options(ignore_status=404).indices.delete(index=name)
        self.client.options(ignore_status=404).indices.delete_index_template(name=f"{self.index}-template")

    def close(self) -> None:
        self.client.close()
