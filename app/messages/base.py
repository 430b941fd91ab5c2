"""The message store interface: the only way to messages, reactions, pins and nonces.

Layout shared by every backend (Discord's): messages are partitioned by ``(channel_id, bucket)`` where
``bucket = app.ids.bucket_of(message_id)`` is a 10-day window, rows ordered ``message_id DESC``. A per-channel
index of non-empty buckets lets a sparse channel be read without touching its empty windows.

Contract, for every method unless its docstring says otherwise:
- Lists of messages are newest first (``message_id`` descending).
- Writes are keyed by snowflake and idempotent: retrying one after a timeout is safe.
- "Not found" is ``None`` (single lookups) or simply absent from the result (batch lookups); never an error.
- Operational failures (timeouts, lost or refused connections, overload, an exhausted pool) reach the caller
  only as :class:`StoreUnavailable`; driver exceptions for them never escape. Errors that mean a bug (a
  malformed statement, a constraint the code should have respected) propagate as they are.
- Stores know nothing of permissions: callers have already decided the principal may do what it asks.
"""
from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from app.ids import bucket_of


class StoreUnavailable(Exception):
    """The store could not answer in time; the request may be retried later."""

    def __init__(self, message: str = "message store unavailable", retry_after: float = 1.0):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Message:
    """A stored message. ``timestamp`` is never stored: it is the snowflake's own time."""

    id: int
    channel_id: int
    author_id: int
    content: str = ""
    type: int = 0
    flags: int = 0
    tts: bool = False
    mention_everyone: bool = False
    mentions: tuple[int, ...] = ()
    mention_roles: tuple[int, ...] = ()
    embeds_json: str | None = None
    nonce: str | None = None
    pinned: bool = False
    edited_at: datetime | None = None
    reference_message_id: int | None = None
    reference_channel_id: int | None = None
    reference_guild_id: int | None = None

    @property
    def bucket(self) -> int:
        return bucket_of(self.id)

    def replace(self, **changes) -> Message:
        return dataclasses.replace(self, **changes)


#: Fields an edit may change; everything else is fixed when the message is created.
EDITABLE_FIELDS = frozenset(
    {"content", "flags", "mention_everyone", "mentions", "mention_roles", "embeds_json", "pinned", "edited_at"}
)


@dataclass(frozen=True, slots=True)
class ReactionCount:
    """One emoji's reactions on one message. ``emoji`` is the key: a unicode string or ``name:id``."""

    emoji: str
    count: int
    me: bool


@dataclass(frozen=True, slots=True)
class Pin:
    message_id: int
    pinned_at: datetime


class MessageStore(ABC):
    """Backends implement the abstract methods; the bucket walk is written once, here.

    A backend that can read buckets concurrently overrides :meth:`_read_buckets`.
    """

    backend: str = "abstract"

    # -- messages -------------------------------------------------------------------------------------------

    @abstractmethod
    def create_message(self, message: Message) -> None:
        """Store a new message (and its bucket in the channel's bucket index).

        Idempotent: writing the same id again is safe. Only the fields that differ from their defaults are
        written, so a retried create does not undo an edit or a pin made in between; to force a field back
        to its default, use :meth:`update_message`.
        """

    @abstractmethod
    def get_message(self, channel_id: int, message_id: int) -> Message | None:
        """The message, or None when it does not exist in that channel."""

    def get_messages(self, channel_id: int, message_ids: Iterable[int]) -> dict[int, Message]:
        """The messages of ``message_ids`` that exist in the channel, by id."""
        found = {}
        for message_id in set(message_ids):
            message = self.get_message(channel_id, message_id)
            if message is not None:
                found[message_id] = message
        return found

    @abstractmethod
    def update_message(self, channel_id: int, message_id: int, changes: dict) -> Message | None:
        """Apply ``changes`` (keys from :data:`EDITABLE_FIELDS`) and return the updated message.

        Returns None, and writes nothing that could be read back as a message, when the message does not
        exist, including when it is deleted concurrently.
        """

    @abstractmethod
    def delete_messages(self, channel_id: int, message_ids: Sequence[int]) -> None:
        """Delete the messages with their reactions and pins. Idempotent; unknown ids are ignored."""

    @abstractmethod
    def delete_channel(self, channel_id: int) -> None:
        """Delete everything stored for a channel. Idempotent."""

    # -- reading history ------------------------------------------------------------------------------------

    @abstractmethod
    def channel_buckets(self, channel_id: int) -> list[int]:
        """Buckets that hold (or held) messages of the channel, newest first.

        May contain buckets that have since become empty; never omits a non-empty one.
        """

    @abstractmethod
    def _read_bucket(
        self, channel_id: int, bucket: int, *, after: int | None, before: int | None, limit: int, oldest_first: bool
    ) -> list[Message]:
        """Up to ``limit`` messages of one bucket with ``after < id < before`` (either bound optional),
        nearest to ``after`` first when ``oldest_first`` else nearest to ``before`` first."""

    def _read_buckets(
        self, channel_id: int, buckets: Sequence[int], *, after: int | None, before: int | None, limit: int,
        oldest_first: bool,
    ):
        """Yield each bucket's page in walk order. The walk stops consuming once the page is full, so a
        backend that prefetches buckets concurrently should prefetch a few at a time."""
        for bucket in buckets:
            yield self._read_bucket(
                channel_id, bucket, after=after, before=before, limit=limit, oldest_first=oldest_first
            )

    def list_messages(
        self, channel_id: int, *, before: int | None = None, after: int | None = None, limit: int = 50
    ) -> list[Message]:
        """Messages of a channel, newest first, with exclusive bounds.

        Without ``after``: the ``limit`` newest messages with ``id < before`` (all when ``before`` is None).
        With ``after``: the ``limit`` messages immediately after ``after`` (and below ``before`` if given),
        still returned newest first. Bounds may be any snowflake, not only ids of existing messages.
        """
        if limit <= 0 or (before is not None and before <= 0):
            return []
        if before is not None and after is not None and before - after <= 1:
            return []
        oldest_first = after is not None
        low = bucket_of(after + 1) if after is not None else None
        high = bucket_of(before - 1) if before is not None else None
        buckets = [b for b in self.channel_buckets(channel_id)
                   if (low is None or b >= low) and (high is None or b <= high)]
        if oldest_first:
            buckets.reverse()
        collected: list[Message] = []
        for page in self._read_buckets(
            channel_id, buckets, after=after, before=before, limit=limit, oldest_first=oldest_first
        ):
            collected.extend(page[: limit - len(collected)])
            if len(collected) >= limit:
                break
        if oldest_first:
            collected.reverse()
        return collected

    def count_messages(self, channel_id: int) -> int:
        """How many messages the channel holds (for progress reporting; may be slow on large channels)."""
        return sum(len(self.messages_in_bucket(channel_id, bucket)) for bucket in self.channel_buckets(channel_id))

    def messages_in_bucket(self, channel_id: int, bucket: int) -> list[Message]:
        """Every message of one bucket, newest first (for backfill and verification)."""
        messages: list[Message] = []
        before = None
        while True:
            page = self._read_bucket(channel_id, bucket, after=None, before=before, limit=1000, oldest_first=False)
            messages.extend(page)
            if len(page) < 1000:
                return messages
            before = page[-1].id

    # -- reactions ------------------------------------------------------------------------------------------

    @abstractmethod
    def add_reaction(self, channel_id: int, message_id: int, emoji: str, user_id: int) -> None:
        """Record that ``user_id`` reacted with ``emoji``. Idempotent."""

    @abstractmethod
    def remove_reaction(self, channel_id: int, message_id: int, emoji: str, user_id: int) -> None:
        """Remove one user's reaction. Idempotent."""

    @abstractmethod
    def remove_emoji(self, channel_id: int, message_id: int, emoji: str) -> None:
        """Remove every reaction with ``emoji`` from the message. Idempotent."""

    @abstractmethod
    def clear_reactions(self, channel_id: int, message_id: int) -> None:
        """Remove every reaction from the message. Idempotent."""

    @abstractmethod
    def reaction_users(
        self, channel_id: int, message_id: int, emoji: str, *, after: int | None, limit: int
    ) -> list[int]:
        """User ids that reacted with ``emoji``, ascending, strictly greater than ``after``."""

    @abstractmethod
    def reaction_counts(
        self, channel_id: int, message_ids: Sequence[int], viewer_id: int
    ) -> dict[int, list[ReactionCount]]:
        """Reactions per message (messages without any are absent), emojis in the order first used;
        ``me`` says whether ``viewer_id`` is among the reactors."""

    # -- pins -----------------------------------------------------------------------------------------------

    @abstractmethod
    def pin_message(self, channel_id: int, message_id: int, pinned_at: datetime) -> None:
        """Pin the message (and set its ``pinned`` field). Idempotent: re-pinning keeps the first time.

        Callers check that the message exists first: backends need not (the SQL store ignores a pin of a
        missing message; the Scylla store, which cannot check without a read, records it, and readers skip
        pins whose message is gone).
        """

    @abstractmethod
    def unpin_message(self, channel_id: int, message_id: int) -> None:
        """Unpin the message (and clear its ``pinned`` field). Idempotent."""

    @abstractmethod
    def list_pins(self, channel_id: int, *, before: datetime | None, limit: int) -> list[Pin]:
        """Pins newest-pinned first, strictly before ``before`` when given."""

    @abstractmethod
    def count_pins(self, channel_id: int) -> int:
        """How many messages of the channel are pinned."""

    # -- nonces ---------------------------------------------------------------------------------------------

    @abstractmethod
    def claim_nonce(
        self, channel_id: int, author_id: int, nonce: str, message_id: int, ttl_seconds: int
    ) -> int | None:
        """Claim ``nonce`` for ``message_id`` unless the author already used it in the channel within the
        last ``ttl_seconds``; returns the message id that holds the claim when it was already taken, else
        None. Claims expire after ``ttl_seconds``."""

    # -- lifecycle ------------------------------------------------------------------------------------------

    @abstractmethod
    def ping(self) -> None:
        """Return quickly if the store answers; raise StoreUnavailable otherwise."""

    def close(self) -> None:  # noqa: B027 (an optional hook: stores without connections keep the no-op)
        """Release connections. The store is not used afterwards."""
