"""Realistic message content shared by the seeding code and the serialization baseline."""
from __future__ import annotations

from datetime import datetime, timezone

from app.ids import snowflake_from_ms

#: Typical chat lines (60 to 120 characters): the payload size decides the cost of serializing a page.
SAMPLE_LINES = (
    "did anyone get the migration running on the staging box? mine stops at revision 0002",
    "pushed a fix for the flaky test, the retry loop was racing the snowflake lease renewal",
    "lunch at noon? the place around the corner has the good dumplings again",
    "I'll review it after standup, ping me if it is blocking the release",
    "the p99 graph looks much better since yesterday's deploy, nice work everyone",
)


def sample_line(index: int) -> str:
    return f"{SAMPLE_LINES[index % len(SAMPLE_LINES)]} #{index}"


def sample_wire_messages(count: int) -> list[dict]:
    """``count`` messages in the wire form the history endpoint answers, through the service's serializer."""
    from app.messages.base import Message
    from app.services.messages import MessageBundle
    from app.services.wire import message_json
    from models import User

    authors = [User(id=snowflake_from_ms(1_600_000_000_000 + n), username=f"user{n}", global_name=f"User {n}",
                    avatar=None, bot=False, created_at=datetime(2020, 1, 1, tzinfo=timezone.utc)) for n in range(8)]
    channel_id = snowflake_from_ms(1_600_000_000_000)
    now_ms = int(datetime.now(timezone.utc).timestamp() * 1000)
    messages = [Message(id=snowflake_from_ms(now_ms - n * 60_000), channel_id=channel_id,
                        author_id=authors[n % len(authors)].id, content=sample_line(n)) for n in range(count)]
    bundle = MessageBundle(messages=messages, users={u.id: u for u in authors})
    return [message_json(m, bundle) for m in messages]
