"""Reactions: idempotent adds, removals at every grain, users in id order, counts in order of first use."""
from __future__ import annotations

import time

from app.messages.base import ReactionCount
from tests.contract.builders import BASE, CHANNEL, MS, OTHER_CHANNEL, post

MESSAGE = BASE
OTHER_MESSAGE = BASE + MS
CUSTOM = "party_parrot:123456789012345678"


def react_in_order(store, reactions, message_id=MESSAGE):
    """Add (emoji, user) reactions one after another. Backends may keep reaction times to the millisecond
    (ScyllaDB's timestamp), so the adds are spaced for "first used" to be observable."""
    for emoji, user_id in reactions:
        store.add_reaction(CHANNEL, message_id, emoji, user_id)
        time.sleep(0.003)


def test_adding_twice_counts_once(store):
    post(store, MESSAGE)
    store.add_reaction(CHANNEL, MESSAGE, "👍", 5)
    store.add_reaction(CHANNEL, MESSAGE, "👍", 5)
    assert store.reaction_counts(CHANNEL, [MESSAGE], 5) == {MESSAGE: [ReactionCount("👍", 1, True)]}
    assert store.reaction_users(CHANNEL, MESSAGE, "👍", after=None, limit=100) == [5]


def test_counts_list_emojis_in_the_order_first_used_with_me(store):
    post(store, MESSAGE, OTHER_MESSAGE)
    # Names sort the other way round, so an order by emoji would fail.
    react_in_order(store, [("😀", 1), (CUSTOM, 2), ("👍", 3), ("😀", 2), (CUSTOM, 3), ("😀", 3)])
    react_in_order(store, [("👍", 9)], message_id=OTHER_MESSAGE)
    assert store.reaction_counts(CHANNEL, [MESSAGE, OTHER_MESSAGE, BASE + 9 * MS], viewer_id=2) == {
        MESSAGE: [ReactionCount("😀", 3, True), ReactionCount(CUSTOM, 2, True), ReactionCount("👍", 1, False)],
        OTHER_MESSAGE: [ReactionCount("👍", 1, False)],
    }


def test_counts_by_key_read_many_channels_each_key_exactly(store):
    post(store, MESSAGE, OTHER_MESSAGE)
    post(store, MESSAGE, channel_id=OTHER_CHANNEL)
    react_in_order(store, [("😀", 1), ("👍", 2), ("😀", 2)])
    store.add_reaction(OTHER_CHANNEL, MESSAGE, "🎉", 1)
    expected = {MESSAGE: [ReactionCount("😀", 2, True), ReactionCount("👍", 1, True)]}
    assert store.reaction_counts_by_key([(CHANNEL, MESSAGE), (CHANNEL, OTHER_MESSAGE)], 2) == expected
    # A key names its channel: the same message id elsewhere is another message's reactions.
    assert store.reaction_counts_by_key([(OTHER_CHANNEL, MESSAGE)], 1) == {MESSAGE: [ReactionCount("🎉", 1, True)]}
    assert store.reaction_counts_by_key([(OTHER_CHANNEL, OTHER_MESSAGE), (CHANNEL, OTHER_MESSAGE)], 1) == {}
    assert store.reaction_counts_by_key([], 1) == {}


def test_re_adding_keeps_the_first_use(store):
    post(store, MESSAGE)
    react_in_order(store, [("😀", 1), ("👍", 2), ("😀", 1)])
    assert [c.emoji for c in store.reaction_counts(CHANNEL, [MESSAGE], 1)[MESSAGE]] == ["😀", "👍"]


def test_an_emoji_used_again_after_all_its_reactions_went_counts_from_its_new_first_use(store):
    post(store, MESSAGE)
    react_in_order(store, [("😀", 1), ("👍", 2)])
    store.remove_reaction(CHANNEL, MESSAGE, "😀", 1)
    react_in_order(store, [("😀", 1)])
    assert [c.emoji for c in store.reaction_counts(CHANNEL, [MESSAGE], 1)[MESSAGE]] == ["👍", "😀"]


def test_messages_without_reactions_are_absent(store):
    post(store, MESSAGE)
    assert store.reaction_counts(CHANNEL, [MESSAGE], 1) == {}
    assert store.reaction_counts(CHANNEL, [], 1) == {}


def test_remove_reaction_removes_one_users_reaction(store):
    post(store, MESSAGE)
    react_in_order(store, [("👍", 1), ("👍", 2), ("😀", 1)])
    store.remove_reaction(CHANNEL, MESSAGE, "👍", 1)
    store.remove_reaction(CHANNEL, MESSAGE, "👍", 1)
    store.remove_reaction(CHANNEL, MESSAGE, "🎉", 1)
    assert store.reaction_counts(CHANNEL, [MESSAGE], 1) == {
        MESSAGE: [ReactionCount("👍", 1, False), ReactionCount("😀", 1, True)]}


def test_remove_emoji_removes_that_emoji_only(store):
    post(store, MESSAGE, OTHER_MESSAGE)
    react_in_order(store, [("👍", 1), ("👍", 2), (CUSTOM, 1)])
    react_in_order(store, [("👍", 1)], message_id=OTHER_MESSAGE)
    store.remove_emoji(CHANNEL, MESSAGE, "👍")
    store.remove_emoji(CHANNEL, MESSAGE, "👍")
    assert store.reaction_counts(CHANNEL, [MESSAGE, OTHER_MESSAGE], 1) == {
        MESSAGE: [ReactionCount(CUSTOM, 1, True)], OTHER_MESSAGE: [ReactionCount("👍", 1, True)]}
    assert store.reaction_users(CHANNEL, MESSAGE, "👍", after=None, limit=100) == []


def test_clear_reactions_empties_one_message(store):
    post(store, MESSAGE, OTHER_MESSAGE)
    post(store, MESSAGE, channel_id=OTHER_CHANNEL)
    react_in_order(store, [("👍", 1), (CUSTOM, 2)])
    react_in_order(store, [("👍", 1)], message_id=OTHER_MESSAGE)
    store.add_reaction(OTHER_CHANNEL, MESSAGE, "👍", 1)
    store.clear_reactions(CHANNEL, MESSAGE)
    store.clear_reactions(CHANNEL, MESSAGE)
    assert set(store.reaction_counts(CHANNEL, [MESSAGE, OTHER_MESSAGE], 1)) == {OTHER_MESSAGE}
    assert set(store.reaction_counts(OTHER_CHANNEL, [MESSAGE], 1)) == {MESSAGE}


def test_reaction_users_ascend_after_an_exclusive_cursor(store):
    post(store, MESSAGE)
    users = [2**62 + 5, 40, 7, 300, 12, 2**40]
    for user_id in users:
        store.add_reaction(CHANNEL, MESSAGE, "👍", user_id)
    store.add_reaction(CHANNEL, MESSAGE, CUSTOM, 8)
    ascending = sorted(users)
    assert store.reaction_users(CHANNEL, MESSAGE, "👍", after=None, limit=100) == ascending
    assert store.reaction_users(CHANNEL, MESSAGE, "👍", after=None, limit=2) == ascending[:2]
    assert store.reaction_users(CHANNEL, MESSAGE, "👍", after=12, limit=3) == [40, 300, 2**40]
    assert store.reaction_users(CHANNEL, MESSAGE, "👍", after=13, limit=100) == ascending[2:]
    assert store.reaction_users(CHANNEL, MESSAGE, "👍", after=0, limit=100) == ascending
    assert store.reaction_users(CHANNEL, MESSAGE, "👍", after=2**62 + 5, limit=100) == []
    assert store.reaction_users(CHANNEL, MESSAGE, "👍", after=None, limit=0) == []
