"""Search in tests without gunicorn: move the outbox onto the bus and index it, as the workers' greenlets would."""
from __future__ import annotations

from sqlalchemy import text

from app.events.relay import EventRelay
from app.search.base import GuildCreated
from app.search.indexer import build_indexer

SEARCH_TABLES = ("search_documents", "search_tombstones", "search_guilds")
SQLITE_TABLES = ("documents", "mentions", "tombstones", "guilds")


def index_now(resources) -> int:
    """Relay every committed event and index it; returns how many events the indexer applied."""
    relay = EventRelay(resources.engine, resources.event_bus)
    assert relay.leadership.acquire(), "another relay leads on this test database"
    try:
        while relay.relay_once():
            pass
    finally:
        relay.leadership.release()
    return build_indexer(resources, backfill=False).drain()


def mark_indexed(resources, guild_id: int) -> None:
    """A guild made by the factories (which record no events) as the indexer marks one born with the stream."""
    resources.search_engine.apply([GuildCreated(guild_id)])


def empty_search_index(resources) -> None:
    engine = resources.search_engine
    if engine.name == "postgres":
        with resources.engine.begin() as connection:
            for table in SEARCH_TABLES:
                connection.execute(text(f"DELETE FROM {table}"))
    elif engine.name == "sqlite":
        def empty(connection):
            # The full-text table is contentless: emptied by its own command, not by DELETE.
            connection.execute("INSERT INTO documents_text (documents_text) VALUES ('delete-all')")
            for table in SQLITE_TABLES:
                connection.execute(f"DELETE FROM {table}")

        engine._write(empty)
    else:
        raise AssertionError(f"no way to empty a {engine.name} index in tests")
