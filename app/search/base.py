"""Message search: the engine interface every backend implements, and the values that cross it.

The indexer (app/search/indexer.py) turns events of the stream into :class:`IndexChange` values and hands them to
:meth:`SearchEngine.apply` in batches; the reindexer (app/search/reindex.py) rebuilds a guild from the message
store with :meth:`SearchEngine.add_missing`; the search service asks :meth:`SearchEngine.search` for the ids of
matching messages and reads the messages themselves from the message store, so that what it serves is always
their current state. Engines know nothing of permissions: the caller passes the channels a user may read.

Contract, for every engine unless a method's docstring says otherwise:
- Documents are keyed by message id. Writes are idempotent: applying the same changes again leaves the same
  index. An upsert carries a ``version`` (the message's edit time); an older version never replaces a newer one,
  so an event redelivered late cannot bring back old content.
- A deleted message leaves a tombstone: neither an upsert nor a reindex brings it back while the tombstone is
  kept (at least as long as the event stream retains events, so a redelivered create cannot resurrect it).
- :meth:`search` counts exactly up to :data:`TOTAL_LIMIT`: ``total`` is the number of matching documents, or
  :data:`TOTAL_LIMIT` when there are more (as Elasticsearch's ``track_total_hits`` answers). Paging by ``offset``
  with one sort neither repeats nor skips (ties are broken by message id) through the first :data:`TOTAL_LIMIT`
  matches, as far as a client can page.
- Operational failures (the engine's server or file unavailable, timeouts) reach the caller only as
  :class:`SearchUnavailable`; errors that mean a bug propagate as they are.
- A guild's index has a state (:class:`GuildIndex`): absent (never indexed), ``indexing`` (a reindex is queued or
  running: searches are answered 202 until it ends) or ``ready``.
"""
from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from app.search.text import ContentQuery

#: How far ``total`` counts. Counting every match costs a visit of each one (on PostgreSQL, of its row in the
#: heap: 0.1 to 0.8 s for 30,000 matches in a guild of a million), and no client can page further anyway: Discord's
#: ``offset`` stops at 9,975 with pages of 25.
TOTAL_LIMIT = 10_000


class SearchUnavailable(Exception):
    """The engine could not answer in time; the call may be retried later (answered 503 with Retry-After)."""

    def __init__(self, message: str = "search engine unavailable", retry_after: float = 1.0):
        super().__init__(message)
        self.retry_after = retry_after


class AuthorType(enum.IntEnum):
    USER = 0
    BOT = 1
    WEBHOOK = 2


class Has(enum.IntFlag):
    """What a message has, as Discord's ``has`` search filter names it; stored as a bit set per document."""

    LINK = 1
    EMBED = 2
    FILE = 4
    IMAGE = 8
    VIDEO = 16
    SOUND = 32
    STICKER = 64
    POLL = 128


HAS_NAMES: dict[str, Has] = {member.name.lower(): member for member in Has}


@dataclass(frozen=True, slots=True)
class SearchDocument:
    """What is indexed of one message. ``text`` is the content already tokenized (app.search.text.index_text)."""

    message_id: int
    guild_id: int
    channel_id: int
    author_id: int
    author_type: AuthorType
    text: str
    mentions: tuple[int, ...] = ()
    mention_everyone: bool = False
    has: Has = Has(0)
    pinned: bool = False
    #: Microseconds of the message's last edit (0 if never edited): an older version never replaces a newer one.
    version: int = 0


@dataclass(frozen=True, slots=True)
class Upsert:
    document: SearchDocument


@dataclass(frozen=True, slots=True)
class Delete:
    message_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class DeleteChannel:
    channel_id: int


@dataclass(frozen=True, slots=True)
class SetPins:
    """The channel's pinned messages are now exactly ``pinned_ids`` (from the store, when its pins changed)."""

    channel_id: int
    pinned_ids: frozenset[int]


@dataclass(frozen=True, slots=True)
class GuildCreated:
    """A guild born with the stream: it has no history to rebuild, so its index is ready from the start."""

    guild_id: int


IndexChange = Upsert | Delete | DeleteChannel | SetPins | GuildCreated


class SortBy(enum.Enum):
    TIMESTAMP = "timestamp"
    RELEVANCE = "relevance"


@dataclass(frozen=True)
class SearchQuery:
    """One search in a guild. Set filters combine with AND; the ids within one filter with OR; ``has`` needs
    every named thing and ``has_not`` none of them. ``min_id``/``max_id`` are exclusive bounds.

    ``channel_ids`` are the channels to look in (the ones the caller may read, narrowed to those it asked for);
    None means every channel of the guild, an empty set none.
    """

    guild_id: int
    channel_ids: frozenset[int] | None = None
    content: ContentQuery | None = None
    author_ids: frozenset[int] = frozenset()
    author_types: frozenset[AuthorType] = frozenset()
    excluded_author_types: frozenset[AuthorType] = frozenset()
    mentions: frozenset[int] = frozenset()
    mention_everyone: bool | None = None
    has: Has = Has(0)
    has_not: Has = Has(0)
    pinned: bool | None = None
    min_id: int | None = None
    max_id: int | None = None
    sort_by: SortBy = SortBy.TIMESTAMP
    descending: bool = True
    offset: int = 0
    limit: int = 25

    @property
    def matches_nothing(self) -> bool:
        return (self.channel_ids is not None and not self.channel_ids) or (
            self.content is not None and self.content.matches_nothing)

    @property
    def by_relevance(self) -> bool:
        """Relevance needs words to rank by; without content it is the timestamp order, as on Discord."""
        return self.sort_by is SortBy.RELEVANCE and self.content is not None


@dataclass(frozen=True, slots=True)
class Hit:
    message_id: int
    channel_id: int


@dataclass(frozen=True)
class SearchResult:
    #: Matching documents, counted up to :data:`TOTAL_LIMIT` (that value meaning "at least as many").
    total: int
    hits: list[Hit] = field(default_factory=list)


def bounded_total(query: SearchQuery, page_size: int, count: Callable[[int], int]) -> int:
    """The ``total`` of a search whose page (at ``query.offset``) had ``page_size`` hits: known from the page
    when it is neither full nor past the end, else ``count(TOTAL_LIMIT)``, which counts matches up to its
    argument. Most searches find fewer than a page, and then cost one query instead of two."""
    if page_size < query.limit and (page_size or not query.offset):
        return min(query.offset + page_size, TOTAL_LIMIT)
    return min(count(TOTAL_LIMIT), TOTAL_LIMIT)


class IndexState(enum.Enum):
    INDEXING = "indexing"
    READY = "ready"


@dataclass(frozen=True)
class GuildIndex:
    """A guild's index. While ``indexing``, ``channel_cursor``/``message_cursor`` are the reindex's checkpoint
    (the last channel it reached and, in it, the oldest message indexed; 0 once the channel is done)."""

    guild_id: int
    state: IndexState
    documents_indexed: int = 0
    channel_cursor: int = 0
    message_cursor: int = 0
    owner: str | None = None
    started_at: datetime | None = None
    heartbeat_at: datetime | None = None


class SearchEngine(ABC):
    """Where messages are indexed and searched."""

    name: str = "abstract"

    @abstractmethod
    def apply(self, changes: Sequence[IndexChange]) -> None:
        """Apply the changes in order, all or none (one bulk write).

        An ``Upsert`` of a tombstoned message, or with a version below the indexed one, changes nothing. A
        ``Delete`` removes the documents and leaves tombstones. ``SetPins`` sets ``pinned`` on every indexed
        document of the channel. ``GuildCreated`` makes the guild's index ready unless it already has a state.
        """

    @abstractmethod
    def search(self, query: SearchQuery) -> SearchResult:
        """The matching documents' ids in the query's order, from ``offset``, at most ``limit``, and their total
        up to :data:`TOTAL_LIMIT`."""

    @abstractmethod
    def guild_index(self, guild_id: int) -> GuildIndex | None:
        """The guild's index state, or None when it was never indexed nor queued."""

    @abstractmethod
    def count_documents(self, guild_id: int) -> int:
        """How many documents the guild has in the index."""

    @abstractmethod
    def request_index(self, guild_id: int) -> GuildIndex:
        """Queue the guild for a reindex unless it has a state already; return its state. Idempotent."""

    @abstractmethod
    def begin_reindex(self, guild_id: int, owner: str) -> GuildIndex:
        """Start rebuilding the guild: its documents are dropped, its state is ``indexing`` with no checkpoint
        and ``owner`` holds it. Until :meth:`finish_reindex` searches of the guild are answered 202."""

    @abstractmethod
    def claim_reindex(self, owner: str, stale_seconds: float) -> GuildIndex | None:
        """Take a guild left ``indexing`` with no owner, or whose owner's heartbeat is older than
        ``stale_seconds`` (it died), for ``owner``; None when there is none. Two claimers never get the same."""

    @abstractmethod
    def add_missing(self, guild_id: int, documents: Sequence[SearchDocument], *, owner: str,
                    channel_cursor: int, message_cursor: int) -> int:
        """A reindex's batch: index the documents that are neither indexed nor tombstoned, and in the same
        transaction move the checkpoint, add the inserted count to ``documents_indexed`` and beat the owner's
        heartbeat. Returns how many were inserted. Resuming from the checkpoint after a crash therefore
        indexes and counts every message exactly once."""

    @abstractmethod
    def finish_reindex(self, guild_id: int) -> None:
        """The rebuild is complete: the guild's index is ``ready``."""

    @abstractmethod
    def prune_tombstones(self, before: datetime) -> int:
        """Forget tombstones older than ``before`` (and older than every running reindex); return how many."""

    @abstractmethod
    def ping(self) -> None:
        """Return when the engine answers; raise :class:`SearchUnavailable` otherwise."""

    def close(self) -> None:  # noqa: B027 (an optional hook: engines without connections keep the no-op)
        """Release connections and files. The engine must not be used afterwards."""
