"""What the PostgreSQL engine costs in round trips on the indexer's way to searchable."""
from __future__ import annotations

from sqlalchemy import event as sa_event

from app.search.base import Delete, Upsert
from app.search.postgres import PostgresSearchEngine
from tests.search.conftest import empty_search_tables
from tests.search.test_conformance import doc


def test_a_batch_of_upserts_is_one_statement_without_a_transaction(search_postgres):
    """psycopg2 would send a BEGIN and a COMMIT around it, two more round trips; a batch with deletes keeps its
    transaction (all or none)."""
    engine = PostgresSearchEngine(search_postgres)
    wrapped: list[bool] = []

    def record(connection, *_args):
        wrapped.append(not connection.connection.driver_connection.autocommit)

    sa_event.listen(search_postgres, "before_cursor_execute", record)
    try:
        first, second = doc("one"), doc("two")
        engine.apply([Upsert(first), Upsert(second)])
        upserts = list(wrapped)
        wrapped.clear()
        engine.apply([Upsert(doc("three")), Delete((first.message_id,))])
    finally:
        sa_event.remove(search_postgres, "before_cursor_execute", record)
        empty_search_tables(search_postgres)
    assert upserts == [False]
    assert wrapped and all(wrapped)
