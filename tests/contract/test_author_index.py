"""The author index: one author's messages in a guild, newest first, across channels, by time window."""
from __future__ import annotations

from app.messages.base import Message, MessageRef
from tests.contract.builders import AUTHOR, BASE, BUCKET, CHANNEL, GUILD, MS, OTHER_CHANNEL

OTHER_AUTHOR = AUTHOR + 1
OTHER_GUILD = GUILD + 1


def write(store, message_id, *, channel_id=CHANNEL, author_id=AUTHOR, guild_id=GUILD):
    store.create_message(Message(id=message_id, channel_id=channel_id, author_id=author_id, content="x",
                                 guild_id=guild_id))


def refs(store, guild_id=GUILD, author_id=AUTHOR, *, after=None, before=None, limit=100):
    return store.messages_by_author(guild_id, author_id, after=after, before=before, limit=limit)


def test_lists_the_authors_messages_in_every_channel_of_the_guild_newest_first(store):
    write(store, BASE)
    write(store, BASE + MS, channel_id=OTHER_CHANNEL)
    write(store, BASE + 2 * MS, author_id=OTHER_AUTHOR)
    write(store, BASE + 3 * MS, guild_id=OTHER_GUILD, channel_id=OTHER_CHANNEL + 1)
    write(store, BASE + BUCKET)  # a later bucket of the same channel
    write(store, BASE + 4 * MS, guild_id=None, channel_id=OTHER_CHANNEL + 2)  # a DM: not indexed
    assert refs(store) == [MessageRef(CHANNEL, BASE + BUCKET), MessageRef(OTHER_CHANNEL, BASE + MS),
                           MessageRef(CHANNEL, BASE)]
    assert refs(store, author_id=OTHER_AUTHOR) == [MessageRef(CHANNEL, BASE + 2 * MS)]
    assert refs(store, guild_id=OTHER_GUILD) == [MessageRef(OTHER_CHANNEL + 1, BASE + 3 * MS)]


def test_bounds_are_exclusive_and_limit_pages(store):
    ids = [BASE + i * MS for i in range(5)]
    for message_id in ids:
        write(store, message_id)
    assert [r.message_id for r in refs(store, after=ids[1])] == ids[:1:-1]
    assert [r.message_id for r in refs(store, before=ids[3])] == ids[2::-1]
    assert [r.message_id for r in refs(store, after=ids[0], before=ids[4])] == ids[3:0:-1]
    assert [r.message_id for r in refs(store, limit=2)] == [ids[4], ids[3]]
    assert [r.message_id for r in refs(store, before=ids[3], limit=2)] == [ids[2], ids[1]]
    assert refs(store, after=ids[1], before=ids[2]) == []
    assert refs(store, limit=0) == []


def test_deleted_messages_leave_the_index(store):
    write(store, BASE)
    write(store, BASE + MS)
    store.delete_messages(CHANNEL, [BASE])
    assert refs(store) == [MessageRef(CHANNEL, BASE + MS)]


def test_the_guild_is_read_back_with_the_message(store):
    write(store, BASE)
    assert store.get_message(CHANNEL, BASE).guild_id == GUILD
    assert store.list_messages(CHANNEL)[0].guild_id == GUILD


def test_an_unknown_author_or_guild_has_nothing(store):
    write(store, BASE)
    assert refs(store, author_id=OTHER_AUTHOR) == []
    assert refs(store, guild_id=OTHER_GUILD) == []
