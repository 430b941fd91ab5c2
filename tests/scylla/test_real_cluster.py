"""The store against a real ScyllaDB/Cassandra cluster, when TEST_SCYLLA_HOSTS names one (see the README).

Without it these tests are skipped, and the skip reason says so; the contract suite (tests/contract) runs on a
real cluster under the same variable.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from app.ids import BUCKET_SIZE_MS, SnowflakeGenerator
from app.messages.base import Message
from tests.scylla.stores import REAL_CLUSTER_VARIABLE, real_cluster_settings, real_cluster_store

pytestmark = pytest.mark.skipif(real_cluster_settings() is None,
                                reason=f"{REAL_CLUSTER_VARIABLE} is not set: no real Scylla cluster to test against")


@pytest.fixture
def store():
    with real_cluster_store() as fresh:
        yield fresh


def test_round_trip_on_a_real_cluster(store):
    ids = SnowflakeGenerator(5)
    newest = ids.next_id()
    messages = [Message(id=newest - n * (BUCKET_SIZE_MS << 22), channel_id=1, author_id=2, content=str(n),
                        mentions=(3,)) for n in range(4)]
    for message in messages:
        store.create_message(message)
    assert store.list_messages(1, limit=10) == messages
    edited = store.update_message(1, newest, {"content": "edited", "edited_at": datetime.now(timezone.utc)})
    assert edited.content == "edited" and store.get_message(1, newest) == edited
    store.delete_messages(1, [newest])
    assert store.get_message(1, newest) is None
    assert store.claim_nonce(1, 2, "n", 10, 60) is None and store.claim_nonce(1, 2, "n", 11, 60) == 10
    store.ping()
