"""Nonces for enforce_nonce: the first claim wins, per author and channel, until it expires."""
from __future__ import annotations

import time

from tests.contract.builders import AUTHOR, BASE, CHANNEL, MS, OTHER_CHANNEL

TTL = 600


def test_the_first_claim_wins_and_a_repeat_gets_the_holder(store):
    assert store.claim_nonce(CHANNEL, AUTHOR, "abc", BASE, TTL) is None
    assert store.claim_nonce(CHANNEL, AUTHOR, "abc", BASE + MS, TTL) == BASE
    assert store.claim_nonce(CHANNEL, AUTHOR, "abc", BASE + 2 * MS, TTL) == BASE


def test_a_retried_claim_for_the_same_message_is_still_its_own(store):
    assert store.claim_nonce(CHANNEL, AUTHOR, "abc", BASE, TTL) is None
    assert store.claim_nonce(CHANNEL, AUTHOR, "abc", BASE, TTL) is None


def test_other_authors_channels_and_nonces_are_independent(store):
    assert store.claim_nonce(CHANNEL, AUTHOR, "abc", BASE, TTL) is None
    assert store.claim_nonce(CHANNEL, AUTHOR + 1, "abc", BASE + MS, TTL) is None
    assert store.claim_nonce(OTHER_CHANNEL, AUTHOR, "abc", BASE + 2 * MS, TTL) is None
    assert store.claim_nonce(CHANNEL, AUTHOR, "abd", BASE + 3 * MS, TTL) is None
    assert store.claim_nonce(CHANNEL, AUTHOR + 1, "abc", BASE + 9 * MS, TTL) == BASE + MS


def test_a_claim_expires_after_its_ttl(store):
    assert store.claim_nonce(CHANNEL, AUTHOR, "abc", BASE, ttl_seconds=1) is None
    assert store.claim_nonce(CHANNEL, AUTHOR, "abc", BASE + MS, ttl_seconds=1) == BASE
    time.sleep(1.1)
    assert store.claim_nonce(CHANNEL, AUTHOR, "abc", BASE + 2 * MS, TTL) is None
    assert store.claim_nonce(CHANNEL, AUTHOR, "abc", BASE + 3 * MS, TTL) == BASE + 2 * MS
