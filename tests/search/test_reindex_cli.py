"""``flask search reindex`` as operators run it: killed with SIGKILL half way and run again, it indexes every
message exactly once, while the indexer's changes made meanwhile (a new message, a delete) survive the resume."""
from __future__ import annotations

import os
import signal
import subprocess

import pytest

from app.extensions import Resources
from app.messages.base import Message
from app.search.base import Delete, IndexState, SearchQuery, Upsert
from app.search.documents import document_of
from app.search.reindex import stored_message_object
from config import PROJECT_ROOT
from tests.support.databases import migrated_database
from tests.support.factories import Factory
from tests.support.server import wait_for

FLASK = str(PROJECT_ROOT / ".venv" / "bin" / "flask")
CHANNELS, PER_CHANNEL = 3, 300


def all_indexed_ids(engine, guild_id: int) -> list[int]:
    ids, offset = [], 0
    while True:
        hits = engine.search(SearchQuery(guild_id=guild_id, offset=offset, limit=500)).hits
        ids.extend(hit.message_id for hit in hits)
        if len(hits) < 500:
            return ids
        offset += 500


@pytest.fixture(params=["sqlite", "postgres"])
def seeded(request, tmp_path):
    with migrated_database(request.param, tmp_path) as settings:
        settings = settings.replace(search_sqlite_path=str(tmp_path / "search.sqlite3"))
        resources = Resources(settings)
        try:
            factory = Factory(resources)
            owner = factory.actor()
            guild_id, first = factory.guild(owner)
            channels = [first] + [factory.channel(guild_id, f"c{n}") for n in range(CHANNELS - 1)]
            store = resources.message_store
            ids = []
            for channel_id in channels:
                for n in range(PER_CHANNEL):
                    message = Message(id=resources.ids.next_id(), channel_id=channel_id, author_id=owner.id,
                                      content=f"message {n} of {channel_id}")
                    store.create_message(message)
                    ids.append(message.id)
            environment = {**os.environ, "DATABASE_URL": settings.database_url,
                           "SEARCH_SQLITE_PATH": settings.search_sqlite_path}
            yield resources, environment, guild_id, ids, owner
        finally:
            resources.close()


def reindex(environment, guild_id: int, *options: str) -> subprocess.Popen:
    return subprocess.Popen([FLASK, "search", "reindex", "--guild", str(guild_id), "--batch-size", "50", *options],
                            cwd=PROJECT_ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.mark.timeout(120)
def test_a_reindex_killed_and_resumed_indexes_everything_exactly_once(seeded):
    resources, environment, guild_id, ids, owner = seeded
    engine = resources.search_engine
    killed = reindex(environment, guild_id, "--rate", "300", "--no-progress")
    try:
        wait_for(lambda: (state := engine.guild_index(guild_id)) is not None and state.documents_indexed >= 300,
                 60, "the rebuild to get a third of the way")
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
    finally:
        if killed.poll() is None:
            killed.kill()
    halfway = engine.guild_index(guild_id)
    assert halfway.state is IndexState.INDEXING
    assert 300 <= halfway.documents_indexed < len(ids)
    # What is counted is exactly what is indexed: each batch and its checkpoint committed together.
    assert engine.count_documents(guild_id) == halfway.documents_indexed

    # Meanwhile the indexer goes on: a new message, and one already rebuilt deleted.
    new = Message(id=resources.ids.next_id(), channel_id=halfway.channel_cursor, author_id=owner.id, content="new")
    resources.message_store.create_message(new)
    gone = all_indexed_ids(engine, guild_id)[0]
    engine.apply([Upsert(document_of(guild_id, stored_message_object(new, False))), Delete((gone,))])

    resumed = reindex(environment, guild_id)
    stdout, stderr = resumed.communicate(timeout=90)
    assert resumed.returncode == 0, stderr
    assert "(resumed)" in stdout
    done = engine.guild_index(guild_id)
    assert done.state is IndexState.READY
    expected = (set(ids) | {new.id}) - {gone}
    indexed = all_indexed_ids(engine, guild_id)
    assert len(indexed) == len(set(indexed)) and set(indexed) == expected
    # Every stored message counted once by the rebuild: the new one came from the indexer, the gone one was
    # counted before its delete.
    assert done.documents_indexed == len(ids)
    status = subprocess.run([FLASK, "search", "status", "--guild", str(guild_id)], cwd=PROJECT_ROOT, env=environment,
                            capture_output=True, text=True, timeout=60)
    assert status.stdout.strip() == f"guild {guild_id}: ready, {len(expected)} documents", status.stderr
