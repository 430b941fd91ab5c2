"""``flask scylla index-authors``: messages written before CQL 0005 (no guild_id, no author-index entries) get
both for the window asked, so a ban's purge finds them; a rerun changes nothing."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from app import create_app
from app.ids import snowflake_from_ms
from app.messages.base import Message
from tests.scylla.stores import empty_scylla_tables, settings_for, shared_test_nodes
from tests.support.databases import migrated_database
from tests.support.factories import Factory


@pytest.fixture
def app(tmp_path):
    nodes = shared_test_nodes()
    scylla = settings_for(nodes.contact_points, nodes.port)
    with migrated_database("sqlite", tmp_path) as settings:
        settings = settings.replace(message_store="scylla", scylla_hosts=scylla.scylla_hosts,
                                    scylla_port=scylla.scylla_port, scylla_keyspace=scylla.scylla_keyspace)
        empty_scylla_tables(settings)
        application = create_app(settings)
        yield application
        application.extensions["chatstore"].close()
        empty_scylla_tables(settings)


def days_ago(days: float) -> int:
    return snowflake_from_ms(int((datetime.now(timezone.utc) - timedelta(days=days)).timestamp() * 1000))


def test_index_authors_indexes_the_window_once_for_the_author_index(app):
    res = app.extensions["chatstore"]
    make = Factory(res)
    owner, author = make.actor("owner"), make.actor("author")
    guild_id, channel_id = make.guild(owner)
    other = make.channel(guild_id, "other")
    store = res.message_store
    # As written before CQL 0005: no guild_id, hence no author-index entry.
    legacy = {(channel_id, days_ago(1)), (other, days_ago(3)), (other, days_ago(6.5))}
    old = (channel_id, days_ago(10))
    for cid, message_id in legacy | {old}:
        store.create_message(Message(id=message_id, channel_id=cid, author_id=author.id, content="legacy"))
    current = Message(id=days_ago(0.5), channel_id=channel_id, author_id=author.id, content="new",
                      guild_id=guild_id)
    store.create_message(current)

    def indexed() -> set[tuple[int, int]]:
        refs = store.messages_by_author(guild_id, author.id, after=None, before=None, limit=100)
        return {(ref.channel_id, ref.message_id) for ref in refs}

    assert indexed() == {(channel_id, current.id)}
    runner = app.test_cli_runner()
    result = runner.invoke(args=["scylla", "index-authors"])
    assert result.exit_code == 0, result.output
    assert "indexed 3 messages of the last 7 days in 2 channels" in result.output
    assert "2/2 channels, 3 messages indexed" in result.output
    assert indexed() == legacy | {(channel_id, current.id)}
    assert {store.get_message(cid, i).guild_id for cid, i in legacy} == {guild_id}
    assert store.get_message(*old).guild_id is None
    # Idempotent: nothing left to do in the same window; a wider one takes the older message.
    again = runner.invoke(args=["scylla", "index-authors"])
    assert again.exit_code == 0 and "indexed 0 messages" in again.output
    wider = runner.invoke(args=["scylla", "index-authors", "--days", "30"])
    assert wider.exit_code == 0 and "indexed 1 messages of the last 30 days" in wider.output
    assert old in indexed()
    refused = runner.invoke(args=["scylla", "index-authors", "--days", "0"])
    assert refused.exit_code != 0 and "--days" in refused.output
