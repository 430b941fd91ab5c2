"""The Redis Streams event bus (EVENT_BUS=redis, production).

One stream per partition, ``<prefix>:{<partition>}``; the braces are a hash tag, so a Redis Cluster spreads the
partitions over its nodes while a partition's stream and its trim marker share a slot. Stream ids are the
positions. Consumer groups are Redis consumer groups created on every partition's stream (XREADGROUP, XACK,
XAUTOCLAIM).

Retention: ``trim`` finds the newest entry the retention drops (by age against the server's clock, or beyond a
count), records it in the partition's ``:trimmed`` key and trims up to it, in one MULTI. A read after a position
older than that marker raises :class:`PositionExpired`: Redis 7.0 does not count trimmed entries in the stream's
``max-deleted-entry-id``, so the marker is ours.

redis-py talks through the ``socket`` module, which gevent patches: every call, a blocking XREAD included, waits
cooperatively (tests/events checks that the hub keeps running). Every call has a socket timeout, so blocking
reads wait in slices shorter than it.
"""
from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import redis
from redis import exceptions as redis_errors

from app.events.base import Event, EventBus, EventBusUnavailable, PositionExpired, event_from_bytes, event_to_bytes

#: Socket timeout of every call; a blocking read waits in slices of BLOCK_SLICE_SECONDS, well below it.
SOCKET_TIMEOUT_SECONDS = 2.0
BLOCK_SLICE_SECONDS = 1.0
_FIELD = "e"
_STREAM_ID = re.compile(r"\d+-\d+")
_UNAVAILABLE = (redis_errors.ConnectionError, redis_errors.TimeoutError, redis_errors.BusyLoadingError,
                redis_errors.ReadOnlyError, redis_errors.TryAgainError, redis_errors.ClusterDownError)


def _stream_id(position: str) -> tuple[int, int]:
    if not (isinstance(position, str) and _STREAM_ID.fullmatch(position)):
        raise ValueError(f"not a position of the redis event bus: {position!r}")
    milliseconds, sequence = position.split("-")
    return int(milliseconds), int(sequence)


class RedisEventBus(EventBus):
    backend = "redis"

    def __init__(self, client: redis.Redis, partitions: int, *, prefix: str, max_age_seconds: int | None = None,
                 max_events: int | None = None):
        super().__init__(partitions)
        self.client = client
        self.prefix = prefix
        self.max_age_seconds = max_age_seconds
        self.max_events = max_events

    @classmethod
    def from_url(cls, url: str, partitions: int, **options) -> RedisEventBus:
        # Connections are made on first use, so building the bus connects nothing.
        client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=SOCKET_TIMEOUT_SECONDS,
                                      socket_connect_timeout=SOCKET_TIMEOUT_SECONDS, health_check_interval=30)
        return cls(client, partitions, **options)

    def stream(self, partition: int) -> str:
        return f"{self.prefix}:{{{partition}}}"

    def _trim_marker(self, partition: int) -> str:
        return f"{self.stream(partition)}:trimmed"

    @contextmanager
    def _calls(self) -> Iterator[None]:
        try:
            yield
        except _UNAVAILABLE as error:
            raise EventBusUnavailable(f"redis event bus unavailable: {type(error).__name__}") from error
        except redis_errors.ResponseError as error:
            if str(error).startswith("NOGROUP"):
                raise ValueError(f"no such consumer group: call ensure_group first ({error})") from None
            raise

    def _events(self, partition: int, entries) -> list[Event]:
        return [event_from_bytes(fields[_FIELD], partition=partition, position=entry_id)
                for entry_id, fields in entries if fields is not None]

    # -- publishing and reading ------------------------------------------------------------------------------

    def publish(self, events: Sequence[Event]) -> None:
        if not events:
            return
        with self._calls():
            # One connection, commands in order: each partition's entries are appended in the given order.
            pipeline = self.client.pipeline(transaction=False)
            for event in events:
                pipeline.xadd(self.stream(self.partition_for(event)), {_FIELD: event_to_bytes(event)})
            pipeline.execute()

    def read(self, partition: int, after: str | None, limit: int, block_seconds: float = 0) -> list[Event]:
        start = "0-0" if after is None else after
        _stream_id(start)
        deadline = time.monotonic() + block_seconds
        block_ms = None
        with self._calls():
            while True:
                # The marker is read after the entries: a trim in between is then seen, and raises.
                pipeline = self.client.pipeline(transaction=False)
                pipeline.xread({self.stream(partition): start}, count=limit, block=block_ms)
                pipeline.get(self._trim_marker(partition))
                reply, trimmed_through = pipeline.execute()
                if after is not None and trimmed_through and _stream_id(after) < _stream_id(trimmed_through):
                    raise PositionExpired(partition, after, self.oldest_position(partition))
                if reply:
                    return self._events(partition, reply[0][1])
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                # BLOCK 0 would wait forever.
                block_ms = max(1, int(min(remaining, BLOCK_SLICE_SECONDS) * 1000))

    def position_order(self, position: str) -> tuple[int, ...]:
        return _stream_id(position)

    def oldest_position(self, partition: int) -> str | None:
        with self._calls():
            entries = self.client.xrange(self.stream(partition), count=1)
        return entries[0][0] if entries else None

    def latest_position(self, partition: int) -> str | None:
        with self._calls():
            try:
                last = self.client.xinfo_stream(self.stream(partition))["last-generated-id"]
            except redis_errors.ResponseError:  # no such key: nothing was ever published there
                return None
        return None if last == "0-0" else last

    # -- consumer groups -------------------------------------------------------------------------------------

    def ensure_group(self, group: str) -> None:
        with self._calls():
            pipeline = self.client.pipeline(transaction=False)
            for partition in range(self.partitions):
                pipeline.xgroup_create(self.stream(partition), group, id="0", mkstream=True)
            for outcome in pipeline.execute(raise_on_error=False):
                if isinstance(outcome, Exception) and not str(outcome).startswith("BUSYGROUP"):
                    raise outcome

    def _group_state(self, group: str) -> list[tuple[str, str | None, int | None]]:
        """Per partition: the group's last delivered id, the stream's newest retained id, and the group's lag."""
        pipeline = self.client.pipeline(transaction=False)
        for partition in range(self.partitions):
            pipeline.xinfo_groups(self.stream(partition))
            pipeline.xrevrange(self.stream(partition), count=1)
        replies = pipeline.execute(raise_on_error=False)
        state = []
        for groups, newest in zip(replies[0::2], replies[1::2]):
            mine = [] if isinstance(groups, Exception) else [info for info in groups if info["name"] == group]
            if not mine:
                raise ValueError(f"no such consumer group {group!r}: call ensure_group first")
            if isinstance(newest, Exception):
                raise newest
            state.append((mine[0]["last-delivered-id"], newest[0][0] if newest else None, mine[0]["lag"]))
        return state

    def read_group(self, group: str, consumer: str, count: int, block_seconds: float = 0) -> list[Event]:
        deadline = time.monotonic() + block_seconds
        with self._calls():
            while True:
                state = self._group_state(group)
                waiting = [partition for partition, (delivered, newest, _) in enumerate(state)
                           if newest is not None and _stream_id(newest) > _stream_id(delivered)]
                delivered_events = self._deliver(group, consumer, count, waiting)
                remaining = deadline - time.monotonic()
                if delivered_events or remaining <= 0:
                    return delivered_events
                # Wake when any partition has an entry the group has not been given; then deliver as above.
                # XREADGROUP itself could hand out more than ``count`` over several streams.
                self.client.xread({self.stream(partition): delivered for partition, (delivered, _, _)
                                   in enumerate(state)}, count=1,
                                  block=max(1, int(min(remaining, BLOCK_SLICE_SECONDS) * 1000)))

    def _deliver(self, group: str, consumer: str, count: int, partitions: list[int]) -> list[Event]:
        # Start at a random partition, so that a busy one does not starve the others.
        random.shuffle(partitions)
        delivered: list[Event] = []
        for partition in partitions:
            if len(delivered) >= count:
                break
            reply = self.client.xreadgroup(group, consumer, {self.stream(partition): ">"},
                                           count=count - len(delivered))
            if reply:
                delivered.extend(self._events(partition, reply[0][1]))
        return delivered

    def ack(self, group: str, events: Sequence[Event]) -> None:
        by_partition: dict[int, list[str]] = {}
        for event in events:
            _stream_id(event.position)
            by_partition.setdefault(event.partition, []).append(event.position)
        if not by_partition:
            return
        with self._calls():
            pipeline = self.client.pipeline(transaction=False)
            for partition, positions in by_partition.items():
                pipeline.xack(self.stream(partition), group, *positions)
            pipeline.execute()

    def claim_stale(self, group: str, consumer: str, min_idle_seconds: float, count: int) -> list[Event]:
        claimed: list[Event] = []
        min_idle_ms = int(min_idle_seconds * 1000)
        with self._calls():
            for partition in range(self.partitions):
                cursor = "0-0"
                while len(claimed) < count:
                    # Entries trimmed away come back in the third element and leave the group's pending list.
                    cursor, entries, *_ = self.client.xautoclaim(self.stream(partition), group, consumer,
                                                                 min_idle_ms, cursor, count=count - len(claimed))
                    claimed.extend(self._events(partition, entries))
                    if cursor == "0-0":
                        break
        return claimed

    def group_lag(self, group: str) -> int:
        with self._calls():
            state = self._group_state(group)
            lag = 0
            for partition, (delivered, _, partition_lag) in enumerate(state):
                if partition_lag is None:  # Redis cannot tell after deletions; count what follows
                    partition_lag = len(self.client.xrange(self.stream(partition), min=f"({delivered}"))
                lag += partition_lag
        return lag

    def groups(self) -> list[str]:
        with self._calls():
            pipeline = self.client.pipeline(transaction=False)
            for partition in range(self.partitions):
                pipeline.xinfo_groups(self.stream(partition))
            replies = pipeline.execute(raise_on_error=False)
        return sorted({info["name"] for reply in replies if not isinstance(reply, Exception) for info in reply})

    # -- operations ------------------------------------------------------------------------------------------

    def trim(self) -> int:
        dropped = 0
        with self._calls():
            seconds, microseconds = self.client.time()
            now_ms = seconds * 1000 + microseconds // 1000
            for partition in range(self.partitions):
                newest_dropped = self._newest_dropped(partition, now_ms)
                if newest_dropped is None:
                    continue
                milliseconds, sequence = _stream_id(newest_dropped)
                pipeline = self.client.pipeline(transaction=True)
                pipeline.set(self._trim_marker(partition), newest_dropped)
                pipeline.xtrim(self.stream(partition), minid=f"{milliseconds}-{sequence + 1}", approximate=False)
                dropped += pipeline.execute()[1]
        return dropped

    def _newest_dropped(self, partition: int, now_ms: int) -> str | None:
        stream = self.stream(partition)
        if self.max_events is not None:
            kept_and_next = self.client.xrevrange(stream, count=self.max_events + 1)
            return kept_and_next[-1][0] if len(kept_and_next) > self.max_events else None
        expired_before = now_ms - self.max_age_seconds * 1000
        newest = self.client.xrevrange(stream, max=f"({expired_before}-0", count=1)
        return newest[0][0] if newest else None

    def ping(self) -> None:
        with self._calls():
            self.client.ping()

    def close(self) -> None:
        self.client.close()
