"""Messages and snowflakes for the contract tests, placed in known buckets."""
from __future__ import annotations

from datetime import datetime, timezone

from gevent.pool import Pool

from app.ids import BUCKET_SIZE_MS, bucket_bounds, bucket_of, snowflake_from_ms
from app.messages.base import Message, MessageStore

CHANNEL = 1_000_001
OTHER_CHANNEL = 1_000_002
AUTHOR = 2_000_001
GUILD = 3_000_001

CONCURRENT_WRITES = 8

#: A bucket in mid-2025, and the first snowflake of it; history is laid out relative to it.
BASE_BUCKET = bucket_of(snowflake_from_ms(int(datetime(2025, 6, 1, tzinfo=timezone.utc).timestamp() * 1000)))
BASE = bucket_bounds(BASE_BUCKET)[0]
#: One millisecond and one bucket, in snowflake units.
MS = 1 << 22
BUCKET = BUCKET_SIZE_MS * MS


def post(store: MessageStore, *message_ids: int, channel_id: int = CHANNEL) -> list[int]:
    """Create plain messages with these ids, a few at a time as concurrent requests would; returns the ids
    newest first, as lists come back."""
    Pool(CONCURRENT_WRITES).map(
        lambda message_id: store.create_message(
            Message(id=message_id, channel_id=channel_id, author_id=AUTHOR, content=f"#{message_id}")),
        message_ids)
    return sorted(message_ids, reverse=True)


def ids_of(messages) -> list[int]:
    return [message.id for message in messages]
