"""Writing messages: create, read back, edit, delete, whole channels, and the bucket index."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from app.ids import bucket_of
from app.messages.base import Message
from tests.contract.builders import AUTHOR, BASE, BASE_BUCKET, BUCKET, CHANNEL, GUILD, MS, OTHER_CHANNEL, ids_of, post

EDITED_AT = datetime(2025, 6, 2, 12, 30, 15, tzinfo=timezone.utc)


def full_message(message_id: int = BASE) -> Message:
    """A message with every field away from its default."""
    return Message(
        id=message_id, channel_id=CHANNEL, author_id=AUTHOR, content="hello <@7>", type=19, flags=4, tts=True,
        mention_everyone=True, mentions=(7, 2**62), mention_roles=(11,), embeds_json='[{"title":"t"}]',
        nonce="n-1", pinned=True, edited_at=EDITED_AT, reference_message_id=BASE - MS,
        reference_channel_id=CHANNEL, reference_guild_id=99,
        attachments_json='[{"id":"5","filename":"a.txt","size":3}]',
        components_json='[{"type":1,"components":[{"type":2,"style":1,"label":"b","custom_id":"c"}]}]',
        guild_id=GUILD, webhook_id=AUTHOR, webhook_username="Captain Hook",
        webhook_avatar_url="https://example.com/hook.png")


def test_every_field_round_trips(store):
    message = full_message()
    store.create_message(message)
    assert store.get_message(CHANNEL, message.id) == message
    assert store.list_messages(CHANNEL) == [message]


def test_a_webhook_message_keeps_its_sender_through_an_edit(store):
    message = Message(id=BASE, channel_id=CHANNEL, author_id=AUTHOR, content="from a hook", webhook_id=AUTHOR,
                      webhook_username="Captain Hook")
    store.create_message(message)
    assert store.get_message(CHANNEL, BASE) == message
    updated = store.update_message(CHANNEL, BASE, {"content": "edited", "edited_at": EDITED_AT})
    assert (updated.webhook_id, updated.webhook_username, updated.webhook_avatar_url) == (AUTHOR, "Captain Hook",
                                                                                          None)
    assert store.get_message(CHANNEL, BASE) == updated


def test_default_fields_round_trip(store):
    message = Message(id=BASE, channel_id=CHANNEL, author_id=AUTHOR)
    store.create_message(message)
    assert store.get_message(CHANNEL, BASE) == message


def test_creating_the_same_message_twice_stores_it_once(store):
    message = full_message()
    store.create_message(message)
    store.create_message(message)
    assert store.list_messages(CHANNEL) == [message]
    assert store.channel_buckets(CHANNEL) == [BASE_BUCKET]


def test_a_message_is_found_only_in_its_own_channel(store):
    post(store, BASE)
    assert store.get_message(OTHER_CHANNEL, BASE) is None
    assert store.get_message(CHANNEL, BASE + 1) is None


def test_get_messages_returns_those_that_exist_in_the_channel(store):
    post(store, BASE, BASE + 3 * BUCKET)
    post(store, BASE + MS, channel_id=OTHER_CHANNEL)
    found = store.get_messages(CHANNEL, [BASE, BASE + 3 * BUCKET, BASE + MS, BASE + 2 * MS, BASE])
    assert set(found) == {BASE, BASE + 3 * BUCKET}
    assert all(message.id == message_id for message_id, message in found.items())
    assert store.get_messages(CHANNEL, []) == {}


def test_get_messages_by_key_reads_many_channels_each_key_exactly(store):
    post(store, BASE, BASE + 3 * BUCKET)
    post(store, BASE + MS, BASE + 2 * BUCKET, channel_id=OTHER_CHANNEL)
    found = store.get_messages_by_key([
        (CHANNEL, BASE), (CHANNEL, BASE + 3 * BUCKET), (OTHER_CHANNEL, BASE + 2 * BUCKET),
        # in another channel than asked, or nowhere: absent
        (CHANNEL, BASE + MS), (OTHER_CHANNEL, BASE), (CHANNEL, BASE + 2 * MS), (CHANNEL, BASE)])
    assert {message_id: message.channel_id for message_id, message in found.items()} == {
        BASE: CHANNEL, BASE + 3 * BUCKET: CHANNEL, BASE + 2 * BUCKET: OTHER_CHANNEL}
    assert found[BASE] == store.get_message(CHANNEL, BASE)
    assert store.get_messages_by_key([]) == {}


def test_channel_buckets_lists_the_buckets_in_use_newest_first(store):
    post(store, BASE, BASE + MS, BASE + 7 * BUCKET, BASE + 2 * BUCKET)
    post(store, BASE + 20 * BUCKET, channel_id=OTHER_CHANNEL)
    assert store.channel_buckets(CHANNEL) == [BASE_BUCKET + 7, BASE_BUCKET + 2, BASE_BUCKET]
    assert store.channel_buckets(OTHER_CHANNEL + 1) == []


def test_messages_in_bucket_returns_the_whole_bucket_newest_first(store):
    # More than one internal page of a bucket (1000 rows), and neighbours that must stay out.
    in_bucket = [BASE + i * MS for i in range(1005)]
    post(store, *in_bucket, BASE - 1, BASE + BUCKET)
    assert ids_of(store.messages_in_bucket(CHANNEL, BASE_BUCKET)) == sorted(in_bucket, reverse=True)
    assert store.messages_in_bucket(CHANNEL, BASE_BUCKET + 5) == []


class TestUpdate:
    def test_only_the_listed_fields_change(self, store):
        original = full_message()
        store.create_message(original)
        later = datetime(2025, 7, 1, 8, 0, 0, tzinfo=timezone.utc)
        changes = {"content": "edited", "mentions": (), "edited_at": later}
        expected = original.replace(**changes)
        assert store.update_message(CHANNEL, original.id, changes) == expected
        assert store.get_message(CHANNEL, original.id) == expected

    def test_every_editable_field_can_change(self, store):
        post(store, BASE)
        changes = {"content": "new", "flags": 4, "mention_everyone": True, "mentions": (1, 2), "mention_roles": (3,),
                   "embeds_json": "[]", "pinned": True, "edited_at": EDITED_AT,
                   "attachments_json": '[{"id":"1"}]', "components_json": '[{"type":1,"components":[]}]'}
        updated = store.update_message(CHANNEL, BASE, changes)
        assert {name: getattr(updated, name) for name in changes} == changes
        assert store.get_message(CHANNEL, BASE) == updated

    def test_a_missing_message_is_not_created(self, store):
        post(store, BASE)
        assert store.update_message(CHANNEL, BASE + MS, {"content": "x", "edited_at": EDITED_AT}) is None
        assert store.update_message(OTHER_CHANNEL, BASE, {"content": "x"}) is None
        assert store.get_message(CHANNEL, BASE + MS) is None
        assert store.get_message(OTHER_CHANNEL, BASE) is None
        assert ids_of(store.list_messages(CHANNEL)) == [BASE]
        assert store.get_message(CHANNEL, BASE).content == f"#{BASE}"

    def test_a_deleted_message_stays_deleted(self, store):
        post(store, BASE)
        store.delete_messages(CHANNEL, [BASE])
        assert store.update_message(CHANNEL, BASE, {"content": "x"}) is None
        assert store.get_message(CHANNEL, BASE) is None
        assert store.list_messages(CHANNEL) == []


class TestDelete:
    def test_removes_the_messages_with_their_reactions_and_pins(self, store):
        post(store, BASE, BASE + MS, BASE + 2 * BUCKET)
        for message_id in (BASE, BASE + 2 * BUCKET, BASE + MS):
            store.add_reaction(CHANNEL, message_id, "👍", AUTHOR)
            store.pin_message(CHANNEL, message_id, EDITED_AT)
        store.delete_messages(CHANNEL, [BASE, BASE + 2 * BUCKET])
        assert ids_of(store.list_messages(CHANNEL)) == [BASE + MS]
        assert set(store.reaction_counts(CHANNEL, [BASE, BASE + MS, BASE + 2 * BUCKET], AUTHOR)) == {BASE + MS}
        assert [pin.message_id for pin in store.list_pins(CHANNEL, before=None, limit=50)] == [BASE + MS]
        assert store.count_pins(CHANNEL) == 1

    def test_is_idempotent_and_ignores_unknown_ids(self, store):
        post(store, BASE, BASE + MS)
        store.delete_messages(CHANNEL, [BASE, BASE + 5 * MS, BASE + 40 * BUCKET])
        store.delete_messages(CHANNEL, [BASE])
        store.delete_messages(CHANNEL, [])
        assert ids_of(store.list_messages(CHANNEL)) == [BASE + MS]

    def test_touches_only_its_channel(self, store):
        post(store, BASE)
        post(store, BASE, channel_id=OTHER_CHANNEL)
        store.delete_messages(OTHER_CHANNEL, [BASE])
        assert ids_of(store.list_messages(CHANNEL)) == [BASE]


class TestDeleteChannel:
    def test_removes_everything_of_the_channel_only(self, store):
        for channel_id in (CHANNEL, OTHER_CHANNEL):
            post(store, BASE, BASE + 3 * BUCKET, channel_id=channel_id)
            store.add_reaction(channel_id, BASE, "👍", AUTHOR)
            store.pin_message(channel_id, BASE, EDITED_AT)
            assert store.claim_nonce(channel_id, AUTHOR, "n", BASE, ttl_seconds=600) is None
        store.delete_channel(CHANNEL)

        assert store.list_messages(CHANNEL) == []
        assert store.get_message(CHANNEL, BASE) is None
        assert store.channel_buckets(CHANNEL) == []
        assert store.reaction_counts(CHANNEL, [BASE], AUTHOR) == {}
        assert store.count_pins(CHANNEL) == 0
        assert store.claim_nonce(CHANNEL, AUTHOR, "n", BASE + MS, ttl_seconds=600) is None

        assert ids_of(store.list_messages(OTHER_CHANNEL)) == [BASE + 3 * BUCKET, BASE]
        assert len(store.reaction_counts(OTHER_CHANNEL, [BASE], AUTHOR)[BASE]) == 1
        assert store.count_pins(OTHER_CHANNEL) == 1
        assert store.claim_nonce(OTHER_CHANNEL, AUTHOR, "n", BASE + MS, ttl_seconds=600) == BASE

    def test_is_idempotent(self, store):
        store.delete_channel(CHANNEL)
        post(store, BASE)
        store.delete_channel(CHANNEL)
        store.delete_channel(CHANNEL)
        assert store.list_messages(CHANNEL) == []


@pytest.mark.parametrize("message_id", [1, (1 << 63) - 1])
def test_extreme_snowflakes_round_trip(store, message_id):
    store.create_message(Message(id=message_id, channel_id=CHANNEL, author_id=AUTHOR))
    assert store.channel_buckets(CHANNEL) == [bucket_of(message_id)]
    assert ids_of(store.list_messages(CHANNEL)) == [message_id]
    assert ids_of(store.list_messages(CHANNEL, after=0)) == [message_id]


def test_count_messages_counts_the_channels_live_messages(store):
    post(store, BASE, BASE + MS, BASE + 4 * BUCKET)
    post(store, BASE, channel_id=OTHER_CHANNEL)
    store.delete_messages(CHANNEL, [BASE + MS])
    assert store.count_messages(CHANNEL) == 2
    assert store.count_messages(OTHER_CHANNEL + 1) == 0
