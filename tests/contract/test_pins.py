"""Pins: idempotent pinning that keeps the first time, unpinning, newest-pinned first pages, counts."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from app.messages.base import Pin
from tests.contract.builders import BASE, CHANNEL, MS, OTHER_CHANNEL, post

NOON = datetime(2025, 6, 3, 12, 0, 0, tzinfo=timezone.utc)


def pinned_ids(store, channel_id=CHANNEL, **page) -> list[int]:
    page.setdefault("before", None)
    page.setdefault("limit", 50)
    return [pin.message_id for pin in store.list_pins(channel_id, **page)]


def test_pinning_sets_the_pinned_flag_and_lists_the_pin(store):
    post(store, BASE, BASE + MS)
    store.pin_message(CHANNEL, BASE, NOON)
    assert store.get_message(CHANNEL, BASE).pinned is True
    assert store.get_message(CHANNEL, BASE + MS).pinned is False
    assert store.list_pins(CHANNEL, before=None, limit=50) == [Pin(BASE, NOON)]
    assert store.count_pins(CHANNEL) == 1


def test_pinning_again_keeps_the_first_time(store):
    post(store, BASE)
    store.pin_message(CHANNEL, BASE, NOON)
    store.pin_message(CHANNEL, BASE, NOON + timedelta(hours=1))
    assert store.list_pins(CHANNEL, before=None, limit=50) == [Pin(BASE, NOON)]
    assert store.count_pins(CHANNEL) == 1


def test_unpinning_clears_the_flag_and_the_pin(store):
    post(store, BASE, BASE + MS)
    store.pin_message(CHANNEL, BASE, NOON)
    store.pin_message(CHANNEL, BASE + MS, NOON)
    store.unpin_message(CHANNEL, BASE)
    store.unpin_message(CHANNEL, BASE)
    assert store.get_message(CHANNEL, BASE).pinned is False
    assert pinned_ids(store) == [BASE + MS]
    assert store.count_pins(CHANNEL) == 1


def test_unpinning_a_message_never_pinned_changes_nothing(store):
    post(store, BASE)
    store.unpin_message(CHANNEL, BASE)
    assert store.get_message(CHANNEL, BASE).pinned is False
    assert store.count_pins(CHANNEL) == 0


def test_pins_list_newest_pinned_first_before_an_exclusive_time(store):
    # Pinned in an order unlike the messages' own order.
    order = [BASE + 3 * MS, BASE, BASE + 5 * MS, BASE + MS, BASE + 4 * MS]
    post(store, *order)
    for minute, message_id in enumerate(order):
        store.pin_message(CHANNEL, message_id, NOON + timedelta(minutes=minute))
    newest_pinned_first = order[::-1]
    assert pinned_ids(store) == newest_pinned_first
    assert pinned_ids(store, limit=2) == newest_pinned_first[:2]
    assert pinned_ids(store, before=NOON + timedelta(minutes=3)) == newest_pinned_first[2:]
    assert pinned_ids(store, before=NOON + timedelta(minutes=2, seconds=30), limit=1) == [order[2]]
    assert pinned_ids(store, before=NOON) == []
    assert store.list_pins(CHANNEL, before=None, limit=50)[0] == Pin(order[-1], NOON + timedelta(minutes=4))


def test_pins_are_per_channel(store):
    post(store, BASE, BASE + MS)
    post(store, BASE + 2 * MS, channel_id=OTHER_CHANNEL)
    store.pin_message(CHANNEL, BASE, NOON)
    store.pin_message(CHANNEL, BASE + MS, NOON)
    store.pin_message(OTHER_CHANNEL, BASE + 2 * MS, NOON)
    assert store.count_pins(CHANNEL) == 2
    assert store.count_pins(OTHER_CHANNEL) == 1
    assert pinned_ids(store, OTHER_CHANNEL) == [BASE + 2 * MS]
    assert store.count_pins(OTHER_CHANNEL + 1) == 0
