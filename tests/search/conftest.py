"""The search engine conformance suite runs every test once per engine in ENGINES.

``sqlite`` gets a fresh index file per test; ``postgres`` a database migrated once per session whose search tables
are emptied after each test; ``elasticsearch`` runs only when TEST_ELASTICSEARCH_URL names a server (none can be
installed on these machines), on an index of its own per test.
"""
from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import text

from app.extensions import create_db_engine
from app.search.base import SearchEngine
from app.search.postgres import PostgresSearchEngine
from app.search.sqlite import SqliteSearchEngine
from tests.support.databases import migrated_database

ELASTICSEARCH_URL = os.environ.get("TEST_ELASTICSEARCH_URL")
ENGINES = ["sqlite", "postgres", *(["elasticsearch"] if ELASTICSEARCH_URL else [])]
SEARCH_TABLES = ("search_documents", "search_tombstones", "search_guilds")


@pytest.fixture(scope="session")
def search_postgres(tmp_path_factory):
    with migrated_database("postgres", tmp_path_factory.mktemp("search-postgres")) as settings:
        engine = create_db_engine(settings)
        yield engine
        engine.dispose()


def empty_search_tables(database) -> None:
    with database.begin() as connection:
        for table in SEARCH_TABLES:
            connection.execute(text(f"DELETE FROM {table}"))


@pytest.fixture(params=ENGINES)
def search_engine(request, tmp_path) -> SearchEngine:
    if request.param == "sqlite":
        engine = SqliteSearchEngine(tmp_path / "search.sqlite3")
        yield engine
        engine.close()
    elif request.param == "postgres":
        database = request.getfixturevalue("search_postgres")
        try:
            yield PostgresSearchEngine(database)
        finally:
            empty_search_tables(database)
    else:
        from app.search.elasticsearch import ElasticsearchSearchEngine

        engine = ElasticsearchSearchEngine.from_url(ELASTICSEARCH_URL, f"chatstore-test-{uuid.uuid4().hex[:12]}",
                                                    refresh=True)
        try:
            yield engine
        finally:
            engine.drop()
            engine.close()
