"""A store whose database does not answer raises StoreUnavailable from every method, never a driver error."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from app.messages.base import Message, StoreUnavailable
from tests.contract.builders import AUTHOR, BASE, BASE_BUCKET, CHANNEL

CALLS = {
    "ping": lambda s: s.ping(),
    "create_message": lambda s: s.create_message(Message(id=BASE, channel_id=CHANNEL, author_id=AUTHOR)),
    "get_message": lambda s: s.get_message(CHANNEL, BASE),
    "get_messages": lambda s: s.get_messages(CHANNEL, [BASE, BASE + 1]),
    "update_message": lambda s: s.update_message(CHANNEL, BASE, {"content": "x"}),
    "delete_messages": lambda s: s.delete_messages(CHANNEL, [BASE]),
    "delete_channel": lambda s: s.delete_channel(CHANNEL),
    "channel_buckets": lambda s: s.channel_buckets(CHANNEL),
    "list_messages": lambda s: s.list_messages(CHANNEL),
    "list_messages_after": lambda s: s.list_messages(CHANNEL, after=0, limit=5),
    "messages_in_bucket": lambda s: s.messages_in_bucket(CHANNEL, BASE_BUCKET),
    "add_reaction": lambda s: s.add_reaction(CHANNEL, BASE, "👍", AUTHOR),
    "remove_reaction": lambda s: s.remove_reaction(CHANNEL, BASE, "👍", AUTHOR),
    "remove_emoji": lambda s: s.remove_emoji(CHANNEL, BASE, "👍"),
    "clear_reactions": lambda s: s.clear_reactions(CHANNEL, BASE),
    "reaction_users": lambda s: s.reaction_users(CHANNEL, BASE, "👍", after=None, limit=10),
    "reaction_counts": lambda s: s.reaction_counts(CHANNEL, [BASE], AUTHOR),
    "pin_message": lambda s: s.pin_message(CHANNEL, BASE, datetime(2025, 6, 3, tzinfo=timezone.utc)),
    "unpin_message": lambda s: s.unpin_message(CHANNEL, BASE),
    "list_pins": lambda s: s.list_pins(CHANNEL, before=None, limit=10),
    "count_pins": lambda s: s.count_pins(CHANNEL),
    "claim_nonce": lambda s: s.claim_nonce(CHANNEL, AUTHOR, "abc", BASE, 60),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_every_method_raises_store_unavailable(unreachable_store, call):
    with pytest.raises(StoreUnavailable) as raised:
        call(unreachable_store)
    assert raised.value.retry_after > 0
