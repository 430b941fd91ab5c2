"""The durable event stream: what every acknowledged write produced, for consumers outside the request.

Flow: the writer appends events to the outbox in the transaction of its write (``app.events.outbox``), so an
event exists iff its write committed; one relay per deployment (``app.events.relay``) moves them, in outbox order,
onto an :class:`EventBus`; consumers read the bus by position (gateway fan-out and resume) or through consumer
groups (workers such as a search indexer).

Contract, for every bus unless a method's docstring says otherwise:
- Partitions: an event lands in ``partition_of(guild_id, channel_id, partitions)``; all events of one guild (of
  one channel when there is no guild) share a partition and are totally ordered in it, in the order they were
  published. There is no order across partitions.
- Positions are opaque strings, meaningful only within one partition of one bus, and they grow with publication
  order. ``after=None`` means "from the oldest retained event".
- Delivery is at least once: a relay that crashed between publishing and forgetting its batch publishes the same
  events (same ``id``) again. Consumers drop duplicates by ``Event.id``; a duplicate has a new position.
- Retention (``EVENT_RETENTION``): ``trim`` drops events older than an age or beyond a count per partition. The
  retention is the window in which a gateway session can resume; reading after a position whose successors were
  trimmed raises :class:`PositionExpired`, never silently skips. A consumer group that lags by more than the
  retention loses the trimmed events, so size the retention for the slowest group too.
- Operational failures (the broker down, timeouts, a lost connection) reach the caller only as
  :class:`EventBusUnavailable`; driver exceptions for them never escape. Misuse (a malformed position) raises
  ``ValueError``.
- Buses know nothing of permissions: a consumer decides what a reader may see.

The interface is small on purpose: a NATS JetStream (subjects per partition, durable consumers for groups, stream
sequence as position), Kafka (topic partitions, offsets, consumer groups) or Pub/Sub backend is one more module
with a factory in ``app.events.BUSES``, and joins the conformance suite in tests/events.
"""
from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson


class EventBusUnavailable(Exception):
    """The bus could not answer in time; the call may be retried later."""

    def __init__(self, message: str = "event bus unavailable", retry_after: float = 1.0):
        super().__init__(message)
        self.retry_after = retry_after


class PositionExpired(Exception):
    """Events after ``position`` were trimmed by retention: the reader must start over (a gateway: a new session)."""

    def __init__(self, partition: int, position: str, oldest: str | None):
        super().__init__(f"position {position} of partition {partition} is past retention (oldest kept: {oldest})")
        self.partition = partition
        self.position = position
        self.oldest = oldest


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened, in Discord's gateway dispatch shape.

    ``id`` is a snowflake minted by the writer (unique across processes: the dedup key); ``type`` the dispatch
    name (``MESSAGE_CREATE``); ``data`` the ``d`` payload already in wire form. ``backfill`` marks events of an
    import that consumers may index but should not push to live sessions. ``traceparent`` is the W3C trace
    context of the write that recorded the event (None outside a trace, and for events stored before events
    carried one), so a consumer continues that trace (app.observability.tracing.consuming). ``partition`` and
    ``position`` are set by the bus on the events it returns.
    """

    id: int
    type: str
    guild_id: int | None
    channel_id: int | None
    data: dict[str, Any] = field(default_factory=dict)
    backfill: bool = False
    traceparent: str | None = None
    partition: int | None = None
    position: str | None = None

    def dispatch(self) -> dict[str, Any]:
        """The event as JSON-ready values, ids as strings like Discord's."""
        return {
            "id": str(self.id),
            "t": self.type,
            "d": self.data,
            "guild_id": _id_text(self.guild_id),
            "channel_id": _id_text(self.channel_id),
            "partition": self.partition,
            "position": self.position,
            "backfill": self.backfill,
        }


def _id_text(value: int | None) -> str | None:
    return None if value is None else str(value)


def event_to_bytes(event: Event) -> bytes:
    """The event's stored form (outbox rows, stream entries); partition and position are where it is stored.

    The trace context is stored only when there is one, under its own key: readers of an older release ignore it,
    and events stored before it existed read back without one.
    """
    stored = {"id": event.id, "t": event.type, "g": event.guild_id, "c": event.channel_id, "d": event.data,
              "b": event.backfill}
    if event.traceparent is not None:
        stored["tp"] = event.traceparent
    return orjson.dumps(stored)


def event_from_bytes(raw: bytes, *, partition: int | None = None, position: str | None = None) -> Event:
    stored = orjson.loads(raw)
    return Event(id=stored["id"], type=stored["t"], guild_id=stored["g"], channel_id=stored["c"], data=stored["d"],
                 backfill=stored["b"], traceparent=stored.get("tp"), partition=partition, position=position)


def partition_of(guild_id: int | None, channel_id: int | None, partitions: int) -> int:
    """The partition of an event: by guild, else by channel (DMs), so that a guild's events are totally ordered.

    A CRC of the id rather than ``hash()``: it must be the same in every process and every release.
    """
    key = guild_id if guild_id is not None else channel_id
    if key is None:
        raise ValueError("an event needs a guild id or a channel id")
    return zlib.crc32(key.to_bytes(8, "big")) % partitions


class EventBus(ABC):
    """An append-only, partitioned, retained log of events with positional reads and consumer groups."""

    backend: str = "abstract"

    def __init__(self, partitions: int):
        self.partitions = partitions

    def partition_for(self, event: Event) -> int:
        return partition_of(event.guild_id, event.channel_id, self.partitions)

    @abstractmethod
    def publish(self, events: Sequence[Event]) -> None:
        """Append the events, each to its partition, in the given order.

        Returns once every event is durable on the bus. On failure some of them may have been appended: the
        caller (the relay) publishes the whole batch again, which consumers see as duplicates by id.
        """

    @abstractmethod
    def read(self, partition: int, after: str | None, limit: int, block_seconds: float = 0) -> list[Event]:
        """Up to ``limit`` events of ``partition`` strictly after ``after``, oldest first.

        When there are none, waits up to ``block_seconds`` (cooperatively) for at least one, then returns what
        there is, possibly nothing. Raises :class:`PositionExpired` when events after ``after`` were trimmed.
        """

    @abstractmethod
    def position_order(self, position: str) -> tuple[int, ...]:
        """A key that sorts positions of one partition in publication order (positions stay opaque otherwise):
        a reader that got the same partition's events from two places (a gateway session resumed on another
        worker) tells with it which of them it already has. ``ValueError`` for a malformed position."""

    @abstractmethod
    def oldest_position(self, partition: int) -> str | None:
        """The position of the oldest retained event of the partition, or None when none is retained."""

    @abstractmethod
    def latest_position(self, partition: int) -> str | None:
        """The position of the newest event ever published to the partition (it may have been trimmed since),
        or None when none was. Reading after it waits for the next event."""

    def latest_positions(self) -> dict[int, str | None]:
        """``latest_position`` of every partition. Buses that can answer in one round trip override it: a reader of
        every partition (the gateway) polls it to read only the partitions that moved."""
        return {partition: self.latest_position(partition) for partition in range(self.partitions)}

    # -- consumer groups -------------------------------------------------------------------------------------

    @abstractmethod
    def ensure_group(self, group: str) -> None:
        """Create the consumer group if it does not exist, starting at the oldest retained events. Idempotent."""

    @abstractmethod
    def read_group(self, group: str, consumer: str, count: int, block_seconds: float = 0) -> list[Event]:
        """Up to ``count`` events never delivered to the group, across partitions, each partition's in order.

        They are now pending for ``consumer`` until acknowledged with :meth:`ack`. Two consumers of one group
        never receive the same event from this method. Waits up to ``block_seconds`` when there is none.
        """

    @abstractmethod
    def ack(self, group: str, events: Sequence[Event]) -> None:
        """Acknowledge events returned to the group (by their partition and position). Idempotent."""

    @abstractmethod
    def claim_stale(self, group: str, consumer: str, min_idle_seconds: float, count: int) -> list[Event]:
        """Up to ``count`` events delivered to the group but unacknowledged for ``min_idle_seconds`` or more,
        now pending for ``consumer`` (redelivery after a consumer died). Pending events that retention trimmed
        are dropped from the group, not returned."""

    @abstractmethod
    def group_lag(self, group: str) -> int:
        """How many retained events the group has not yet been delivered (pending ones are not counted)."""

    @abstractmethod
    def groups(self) -> list[str]:
        """The names of the consumer groups, for metrics."""

    # -- operations ------------------------------------------------------------------------------------------

    @abstractmethod
    def trim(self) -> int:
        """Apply the retention to every partition; return how many events were dropped."""

    @abstractmethod
    def ping(self) -> None:
        """Return when the bus answers; raise :class:`EventBusUnavailable` otherwise."""

    def close(self) -> None:  # noqa: B027 (an optional hook: buses without connections keep the no-op)
        """Release connections. The bus must not be used afterwards."""
