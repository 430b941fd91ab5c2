"""Message search: an engine interface (``base``), engines (``sqlite``, ``postgres``, ``elasticsearch``), the
tokenizer every engine shares (``text``), and what feeds them: the indexer, a consumer group of the event stream
(``indexer``), and the rebuild of a guild from the message store (``reindex``). docs/search.md says how it behaves.

:func:`build_engine` builds the engine that ``SEARCH_ENGINE`` names, from the table :data:`ENGINES`; a new
engine is a module implementing :class:`app.search.base.SearchEngine` and one entry there.
"""
from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import Engine

from app.search.base import SearchEngine
from config import Settings


def _sqlite(settings: Settings, database: Engine) -> SearchEngine:
    from app.search.sqlite import SqliteSearchEngine

    return SqliteSearchEngine(settings.search_index_path)


def _postgres(settings: Settings, database: Engine) -> SearchEngine:
    from app.search.postgres import PostgresSearchEngine

    return PostgresSearchEngine(database)


def _elasticsearch(settings: Settings, database: Engine) -> SearchEngine:
    from app.search.elasticsearch import ElasticsearchSearchEngine

    return ElasticsearchSearchEngine.from_url(settings.search_elasticsearch_url, settings.search_elasticsearch_index)


#: SEARCH_ENGINE name -> factory(settings, metadata database engine).
ENGINES: dict[str, Callable[[Settings, Engine], SearchEngine]] = {
    "sqlite": _sqlite, "postgres": _postgres, "elasticsearch": _elasticsearch}


def build_engine(settings: Settings, database: Engine) -> SearchEngine:
    """The engine ``settings.search_backend`` names. Connects nothing: connections are made on first use.

    ValueError when search is off (``SEARCH_ENGINE=off``, or no event stream to feed it).
    """
    if not settings.search_enabled:
        raise ValueError("search is off in this deployment (SEARCH_ENGINE=off or EVENT_BUS=off)")
    return ENGINES[settings.search_backend](settings, database)


__all__ = ["ENGINES", "build_engine"]
