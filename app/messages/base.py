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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from app.domain import MessageType
from app.ids import bucket_of

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

StoreT = TypeVar("StoreT", bound="MessageStore")

#: The interface methods that change what a channel's reads return. Everything else only reads (or, like
#: ``ping`` and ``close``, touches no data). :class:`StoreDecorator` tells its subclasses after each of these.
WRITE_METHODS = frozenset({
    "create_message", "update_message", "delete_messages", "delete_channel", "add_reaction", "remove_reaction",
    "remove_emoji", "clear_reactions", "pin_message", "unpin_message", "index_authors",
})


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
    #: A plain int, as every store reads it back (a default that repr()s as an enum would differ from a read).
    type: int = MessageType.DEFAULT.value
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
    #: The message's files as a JSON list of attachment records (app.blobs.attachments), None when it has none.
    attachments_json: str | None = None
    #: Discord's message components (action rows, buttons, select menus) as JSON, None when it has none.
    components_json: str | None = None
    #: The guild of the message's channel (None in a DM): what the author index (:meth:`MessageStore.
    #: messages_by_author`) is keyed by. Fixed at creation, as the channel's guild is.
    guild_id: int | None = None
    #: The webhook that sent the message (its id is ``author_id`` too), None for a user's message.
    webhook_id: int | None = None
    #: A webhook message's author name as sent: the execution's ``username``, else the webhook's name then.
    webhook_username: str | None = None
    #: A webhook message's ``avatar_url`` override, as the execution gave it.
    webhook_avatar_url: str | None = None

    @property
    def bucket(self) -> int:
        return bucket_of(self.id)

    def replace(self, **changes) -> Message:
        return dataclasses.replace(self, **changes)


#: Fields an edit may change; everything else is fixed when the message is created.
EDITABLE_FIELDS = frozenset(
    {"content", "flags", "mention_everyone", "mentions", "mention_roles", "embeds_json", "pinned", "edited_at",
     "attachments_json", "components_json"}
)


@dataclass(frozen=True, slots=True)
class ReactionCount:
    """One emoji's reactions on one message. ``emoji`` is the key: a unicode string or ``name:id``."""

    emoji: str
    count: int
    me: bool


@dataclass(frozen=True, slots=True)
class MessageRef:
    """Where a message is: enough to read or delete it through the per-channel methods."""

    channel_id: int
    message_id: int


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

    def get_messages_by_key(self, keys: Iterable[tuple[int, int]]) -> dict[int, Message]:
        """The messages of ``(channel_id, message_id)`` keys, from any number of channels, that exist, by id.

        For reads that span channels (search results): backends answer in one round trip where they can. The
        default asks :meth:`get_messages` once per channel."""
        found: dict[int, Message] = {}
        for channel_id, message_ids in keys_by_channel(keys).items():
            found.update(self.get_messages(channel_id, message_ids))
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

    # -- the author index -----------------------------------------------------------------------------------

    @abstractmethod
    def messages_by_author(
        self, guild_id: int, author_id: int, *, after: int | None, before: int | None, limit: int
    ) -> list[MessageRef]:
        """Where the messages of ``author_id`` in every channel of ``guild_id`` are, newest first, with
        ``after < id < before`` (either bound optional, exclusive), at most ``limit``.

        Indexed by ``(guild_id, author_id, message_id)``, written with each message that has a ``guild_id``
        (DM messages are not indexed): the cost depends on the author's messages in the window only, never on
        the size of the guild's history. :meth:`delete_messages` takes the messages' entries with them. A
        listed message may nevertheless be gone (deleted concurrently; or, on ScyllaDB, whose index is keyed by
        guild and author, with its whole channel by :meth:`delete_channel`, which cannot find the entries
        without a scan): callers read messages back and skip those that are None. Pass the smallest id returned
        as the next ``before`` to page.
        """

    def index_authors(self, channel_id: int, guild_id: int, *, since: int) -> int:
        """Give the channel's messages with ``id >= since`` that have no ``guild_id`` (written before the author
        index existed) ``guild_id`` and their author-index entries, so :meth:`messages_by_author` lists them;
        returns how many it changed. For the operator's ``flask scylla index-authors`` after CQL 0005.

        Idempotent: a message that has its guild is left alone, so a rerun changes nothing and an interrupted
        run is finished by running it again. A message deleted while it runs may leave an index entry behind,
        which readers skip as any entry of a gone message. The default, SQL's, does nothing: migration 0013
        backfilled the column its index is built on."""
        return 0

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

    def reaction_counts_by_key(
        self, keys: Iterable[tuple[int, int]], viewer_id: int
    ) -> dict[int, list[ReactionCount]]:
        """:meth:`reaction_counts` of ``(channel_id, message_id)`` keys from any number of channels. The default
        asks once per channel."""
        counts: dict[int, list[ReactionCount]] = {}
        for channel_id, message_ids in keys_by_channel(keys).items():
            counts.update(self.reaction_counts(channel_id, message_ids, viewer_id))
        return counts

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

    def joins_transactions_of(self, engine: Engine) -> bool:
        """Whether the store's writes join a ``models.base.shared_transaction`` open on ``engine``, so that they
        commit or roll back with whatever else that transaction writes. Only a SQL store on that very engine
        does; the default is no."""
        return False

    # -- the stack ------------------------------------------------------------------------------------------

    def layer(self, kind: type[StoreT]) -> StoreT:
        """The outermost store of this stack that is a ``kind``: this store itself, or for a
        :class:`StoreDecorator` one of the stores it wraps. LookupError when there is none.

        The one way to reach a layer (say, the backend under the metrics), without knowing how the stack is
        ordered.
        """
        if isinstance(self, kind):
            return self
        raise LookupError(f"no {kind.__name__} in {self!r}")


class StoreDecorator(MessageStore):
    """A MessageStore around another one, ``inner``, to which every method goes unless a subclass overrides it.

    Subclasses change behaviour through two hooks rather than by overriding each method: :meth:`call`, through
    which every interface call reaches ``inner``, and :meth:`written`, told the channel after every call of a
    method in :data:`WRITE_METHODS`, whether it succeeded or not (a failed write may still have landed). A
    subclass may also override single methods (coalescing overrides two reads).

    Each method is written out rather than generated, so that a call costs one plain Python call per layer;
    ``tests/unit/messages/test_decorator.py`` checks that the list is complete.
    """

    def __init__(self, inner: MessageStore):
        self.inner = inner
        self.backend = inner.backend

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"

    def layer(self, kind: type[StoreT]) -> StoreT:
        if isinstance(self, kind):
            return self
        return self.inner.layer(kind)

    def call(self, operation: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``method`` (``operation`` of ``inner``) with the arguments. The default just calls it."""
        return method(*args, **kwargs)

    def written(self, channel_id: int) -> None:
        """A write to ``channel_id`` has returned or failed. The default does nothing."""

    def _write(self, channel_id: int, operation: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return self.call(operation, method, *args, **kwargs)
        finally:
            self.written(channel_id)

    # -- writes ---------------------------------------------------------------------------------------------

    def create_message(self, message: Message) -> None:
        return self._write(message.channel_id, "create_message", self.inner.create_message, message)

    def update_message(self, channel_id: int, message_id: int, changes: dict) -> Message | None:
        return self._write(channel_id, "update_message", self.inner.update_message, channel_id, message_id, changes)

    def delete_messages(self, channel_id: int, message_ids: Sequence[int]) -> None:
        return self._write(channel_id, "delete_messages", self.inner.delete_messages, channel_id, message_ids)

    def delete_channel(self, channel_id: int) -> None:
        return self._write(channel_id, "delete_channel", self.inner.delete_channel, channel_id)

    def index_authors(self, channel_id: int, guild_id: int, *, since: int) -> int:
        return self._write(channel_id, "index_authors", self.inner.index_authors, channel_id, guild_id, since=since)

    def add_reaction(self, channel_id: int, message_id: int, emoji: str, user_id: int) -> None:
        return self._write(channel_id, "add_reaction", self.inner.add_reaction, channel_id, message_id, emoji,
                           user_id)

    def remove_reaction(self, channel_id: int, message_id: int, emoji: str, user_id: int) -> None:
        return self._write(channel_id, "remove_reaction", self.inner.remove_reaction, channel_id, message_id, emoji,
                           user_id)

    def remove_emoji(self, channel_id: int, message_id: int, emoji: str) -> None:
        return self._write(channel_id, "remove_emoji", self.inner.remove_emoji, channel_id, message_id, emoji)

    def clear_reactions(self, channel_id: int, message_id: int) -> None:
        return self._write(channel_id, "clear_reactions", self.inner.clear_reactions, channel_id, message_id)

    def pin_message(self, channel_id: int, message_id: int, pinned_at: datetime) -> None:
        return self._write(channel_id, "pin_message", self.inner.pin_message, channel_id, message_id, pinned_at)

    def unpin_message(self, channel_id: int, message_id: int) -> None:
        return self._write(channel_id, "unpin_message", self.inner.unpin_message, channel_id, message_id)

    # -- reads ----------------------------------------------------------------------------------------------

    def get_message(self, channel_id: int, message_id: int) -> Message | None:
        return self.call("get_message", self.inner.get_message, channel_id, message_id)

    def get_messages(self, channel_id: int, message_ids: Iterable[int]) -> dict[int, Message]:
        return self.call("get_messages", self.inner.get_messages, channel_id, message_ids)

    def get_messages_by_key(self, keys: Iterable[tuple[int, int]]) -> dict[int, Message]:
        return self.call("get_messages_by_key", self.inner.get_messages_by_key, keys)

    def list_messages(
        self, channel_id: int, *, before: int | None = None, after: int | None = None, limit: int = 50
    ) -> list[Message]:
        return self.call("list_messages", self.inner.list_messages, channel_id, before=before, after=after,
                         limit=limit)

    def channel_buckets(self, channel_id: int) -> list[int]:
        return self.call("channel_buckets", self.inner.channel_buckets, channel_id)

    def _read_bucket(
        self, channel_id: int, bucket: int, *, after: int | None, before: int | None, limit: int, oldest_first: bool
    ) -> list[Message]:
        # A step inside another call (already passed through ``call`` as that call), so it goes straight in.
        return self.inner._read_bucket(channel_id, bucket, after=after, before=before, limit=limit,
                                       oldest_first=oldest_first)

    def messages_by_author(
        self, guild_id: int, author_id: int, *, after: int | None, before: int | None, limit: int
    ) -> list[MessageRef]:
        return self.call("messages_by_author", self.inner.messages_by_author, guild_id, author_id, after=after,
                         before=before, limit=limit)

    def count_messages(self, channel_id: int) -> int:
        return self.call("count_messages", self.inner.count_messages, channel_id)

    def messages_in_bucket(self, channel_id: int, bucket: int) -> list[Message]:
        return self.call("messages_in_bucket", self.inner.messages_in_bucket, channel_id, bucket)

    def reaction_users(
        self, channel_id: int, message_id: int, emoji: str, *, after: int | None, limit: int
    ) -> list[int]:
        return self.call("reaction_users", self.inner.reaction_users, channel_id, message_id, emoji, after=after,
                         limit=limit)

    def reaction_counts(
        self, channel_id: int, message_ids: Sequence[int], viewer_id: int
    ) -> dict[int, list[ReactionCount]]:
        return self.call("reaction_counts", self.inner.reaction_counts, channel_id, message_ids, viewer_id)

    def reaction_counts_by_key(
        self, keys: Iterable[tuple[int, int]], viewer_id: int
    ) -> dict[int, list[ReactionCount]]:
        return self.call("reaction_counts_by_key", self.inner.reaction_counts_by_key, keys, viewer_id)

    def list_pins(self, channel_id: int, *, before: datetime | None, limit: int) -> list[Pin]:
        return self.call("list_pins", self.inner.list_pins, channel_id, before=before, limit=limit)

    def count_pins(self, channel_id: int) -> int:
        return self.call("count_pins", self.inner.count_pins, channel_id)

    def claim_nonce(
        self, channel_id: int, author_id: int, nonce: str, message_id: int, ttl_seconds: int
    ) -> int | None:
        return self.call("claim_nonce", self.inner.claim_nonce, channel_id, author_id, nonce, message_id,
                         ttl_seconds)

    def ping(self) -> None:
        return self.call("ping", self.inner.ping)

    def close(self) -> None:
        self.inner.close()

    def joins_transactions_of(self, engine: Engine) -> bool:
        return self.inner.joins_transactions_of(engine)


def _document_decorator_methods() -> None:
    """Give StoreDecorator's methods the interface's docstrings, so that help() on any layer shows the contract."""
    for name, method in vars(StoreDecorator).items():
        if callable(method) and name in vars(MessageStore):
            method.__doc__ = vars(MessageStore)[name].__doc__


_document_decorator_methods()


def keys_by_channel(keys: Iterable[tuple[int, int]]) -> dict[int, list[int]]:
    """``(channel_id, message_id)`` keys as each channel's ids, without repeats."""
    by_channel: dict[int, set[int]] = {}
    for channel_id, message_id in keys:
        by_channel.setdefault(channel_id, set()).add(message_id)
    return {channel_id: sorted(ids) for channel_id, ids in by_channel.items()}
