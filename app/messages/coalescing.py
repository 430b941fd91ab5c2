"""Request coalescing: concurrent identical reads in a worker wait on one store call.

A busy channel's latest page is read by many clients at once; without coalescing each of them costs the
store the same query. :class:`CoalescingMessageStore` wraps any store: the first reader of a page starts the
call (the *flight*), readers that ask for the same page while it is in flight wait for its result, and an
error reaches every one of them.

Freshness: a reader never gets a result older than the latest write to that channel that this worker had
acknowledged when the reader asked. Every write method, once the write has returned (or failed, since it may
still have been applied), detaches the channel's flights: their current waiters still get their answer, which
is as fresh as what they asked for, but later readers start a new flight. This is a per-channel write
generation kept only while flights exist, so the wrapper holds nothing for channels that are not being read.
Writes from other processes are not seen, as without coalescing a read racing them could miss them anyway.

Greenlets of one worker share it: its maps are only changed between switches, so they need no lock.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

from gevent.event import AsyncResult

from app.messages.base import Message, MessageStore, ReactionCount, StoreDecorator
from models.base import in_shared_transaction


class CoalescingMessageStore(StoreDecorator):
    """A MessageStore that coalesces ``list_messages`` and ``reaction_counts`` and delegates the rest.

    ``on_coalesced`` is called once for every read answered by joining a flight (for a metric).
    """

    def __init__(self, inner: MessageStore, on_coalesced: Callable[[], None] | None = None):
        super().__init__(inner)
        self._on_coalesced = on_coalesced
        #: channel id -> coalescing key -> the flight's result
        self._flights: dict[int, dict[Hashable, AsyncResult]] = {}

    def _coalesced(self, channel_id: int, key: Hashable, call: Callable[[], object]):
        if in_shared_transaction():
            # A read inside a write transaction may see what is not committed yet: it is nobody else's answer,
            # and an answer others started before the write is not its own.
            return call()
        flights = self._flights.get(channel_id)
        flight = flights.get(key) if flights else None
        if flight is not None:
            if self._on_coalesced is not None:
                self._on_coalesced()
            return flight.get()
        flight = AsyncResult()
        self._flights.setdefault(channel_id, {})[key] = flight
        try:
            result = call()
        except BaseException as error:  # GreenletExit included: waiters must never hang on a killed leader
            flight.set_exception(error)
            raise
        else:
            flight.set(result)
            return result
        finally:
            self._land(channel_id, key, flight)

    def _land(self, channel_id: int, key: Hashable, flight: AsyncResult) -> None:
        """Forget a finished flight, unless a write already detached it (a newer flight may hold its key)."""
        flights = self._flights.get(channel_id)
        if flights is not None and flights.get(key) is flight:
            del flights[key]
            if not flights:
                del self._flights[channel_id]

    def written(self, channel_id: int) -> None:
        self._flights.pop(channel_id, None)

    # -- coalesced reads ------------------------------------------------------------------------------------

    def list_messages(
        self, channel_id: int, *, before: int | None = None, after: int | None = None, limit: int = 50
    ) -> list[Message]:
        key = ("list_messages", before, after, limit)
        page = self._coalesced(
            channel_id, key, lambda: self.inner.list_messages(channel_id, before=before, after=after, limit=limit))
        # Each reader gets its own list: a caller that reorders or extends its page must not change the others'.
        return list(page)

    def reaction_counts(
        self, channel_id: int, message_ids: Sequence[int], viewer_id: int
    ) -> dict[int, list[ReactionCount]]:
        ids = tuple(message_ids)

        def counts_for_this_viewer():
            return viewer_id, self.inner.reaction_counts(channel_id, ids, viewer_id)

        # ``me`` depends on the viewer, so a flight answers other viewers only when it found no reaction at all
        # (the common case for a fresh page); otherwise they ask again, coalesced with their own viewer.
        asked_for, found = self._coalesced(channel_id, ("reaction_counts", ids), counts_for_this_viewer)
        if found and asked_for != viewer_id:
            asked_for, found = self._coalesced(channel_id, ("reaction_counts", ids, viewer_id), counts_for_this_viewer)
        return {message_id: list(reactions) for message_id, reactions in found.items()}

