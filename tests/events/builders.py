"""Events for the tests: guilds spread over every partition, ids unique in the run."""
from __future__ import annotations

import itertools

from app.events.base import Event, partition_of

_ids = itertools.count(1_000_000_000_000_000)


def guilds_per_partition(partitions: int, start: int = 100_000) -> list[int]:
    """One guild id for each partition, in partition order."""
    chosen: dict[int, int] = {}
    for guild_id in itertools.count(start):
        chosen.setdefault(partition_of(guild_id, None, partitions), guild_id)
        if len(chosen) == partitions:
            return [chosen[partition] for partition in range(partitions)]
    raise AssertionError("unreachable")


def event(guild_id: int | None, channel_id: int | None = None, type_: str = "MESSAGE_CREATE", **data) -> Event:
    event_id = next(_ids)
    channel_id = channel_id if channel_id is not None else (guild_id or 0) + 1
    return Event(id=event_id, type=type_, guild_id=guild_id, channel_id=channel_id,
                 data={"id": str(event_id), "channel_id": str(channel_id), **data})


def ids(events) -> list[int]:
    return [published.id for published in events]
