"""Searching a guild's messages, as Discord's ``GET /guilds/{guild.id}/messages/search`` does.

Permissions are decided at query time, with the same algorithm as the history routes
(:meth:`AccessService.readable_channels`): the engine is asked only about channels where the caller has
VIEW_CHANNEL and READ_MESSAGE_HISTORY now, so ``total_results`` counts only those, and a channel hidden after
its messages were indexed is hidden from results at once.

The engine gives ids; the messages served are read from the message store by id, as the history routes serve
them (reactions with the caller's ``me``, replies, current authors). So an edit, a delete or a reaction shows in
results at once, even before the indexer has seen it; a hit deleted since it was indexed is left out of its page
(``total_results`` may count it until the indexer catches up, within its lag). Hits in threads bring their thread
channels (all readable, as every hit's channel is) and the caller's thread member objects of them.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain import THREAD_TYPES, ChannelRef, UserSnapshot
from app.errors import SearchIndexNotReady
from app.messages.base import Message, MessageStore
from app.search.base import IndexState, SearchEngine, SearchQuery
from app.services.access import AccessService
from app.services.messages import MessageBundle, MessageLookup
from app.services.threads import archived_at
from models import Channel, Thread, ThreadMember
from models.base import begin_read_only


@dataclass
class SearchPage:
    total: int
    #: Each hit with the bundle that serializes it (one bundle for the page).
    hits: list[tuple[Message, MessageBundle]]
    #: The thread channels the hits are in (channel, row, archived_at), and the caller's memberships of them.
    threads: list[tuple[Channel, Thread, datetime | None]] = field(default_factory=list)
    members: list[ThreadMember] = field(default_factory=list)


class SearchService:
    def __init__(self, lookup: MessageLookup, engine: SearchEngine, *, retry_after: float = 2.0):
        self.lookup = lookup
        self.session: Session = lookup.session
        self.store: MessageStore = lookup.store
        self.engine = engine
        self.retry_after = retry_after

    def search(self, user: UserSnapshot, query: SearchQuery, requested_channels: frozenset[int]) -> SearchPage:
        """``query`` as the caller asked it, without ``channel_ids``; ``requested_channels`` the channels it
        named (none: all). Raises UnknownGuild/MissingAccess as the guild routes do, and
        :class:`SearchIndexNotReady` while the guild's index is being built (queuing the build on first ask)."""
        every, readable = self._readable_channels(query.guild_id, user)
        state = self.engine.guild_index(query.guild_id)
        if state is None:
            state = self.engine.request_index(query.guild_id)
        if state.state is not IndexState.READY:
            raise SearchIndexNotReady(documents_indexed=self.engine.count_documents(query.guild_id),
                                      retry_after=self.retry_after)
        channels = readable & requested_channels if requested_channels else readable
        # Every channel readable and none named: no channel filter, which engines answer from their guild index.
        scoped = replace(query, channel_ids=None if channels == every.keys() else channels)
        result = self.engine.search(scoped)

        # Hits in channels moved out of reach since the query began are never served.
        keys = [(hit.channel_id, hit.message_id) for hit in result.hits if hit.channel_id in channels]
        messages = self.store.get_messages_by_key(keys) if keys else {}
        # The bundle reads reactions and users for serializing; permissions were decided above.
        bundle = self.lookup.bundle_across_channels(
            [messages[message_id] for _, message_id in keys if message_id in messages], query.guild_id, user)
        page = SearchPage(total=result.total, hits=[(message, bundle) for message in bundle.messages])
        thread_ids = sorted({m.channel_id for m in bundle.messages
                             if getattr(every.get(m.channel_id), "type", None) in THREAD_TYPES})
        if thread_ids:
            self._add_threads(page, user, thread_ids)
        return page

    def _add_threads(self, page: SearchPage, user: UserSnapshot, thread_ids: list[int]) -> None:
        """The page's thread channels and the caller's thread members, a query each."""
        begin_read_only(self.session)
        now = datetime.now(timezone.utc)
        page.threads = [(channel, thread, archived_at(channel, thread, now)) for channel, thread in
                        self.session.execute(select(Channel, Thread).join(Thread, Thread.channel_id == Channel.id)
                                             .where(Channel.id.in_(thread_ids)).order_by(Channel.id))]
        page.members = list(self.session.scalars(select(ThreadMember).where(
            ThreadMember.user_id == user.id, ThreadMember.thread_id.in_(thread_ids)).order_by(ThreadMember.thread_id)))
        self.session.commit()

    def _readable_channels(self, guild_id: int, user: UserSnapshot) -> tuple[dict[int, ChannelRef], frozenset[int]]:
        reads = self.lookup.reads
        kept = reads.readable_channels(guild_id, user.id)
        if kept is None:
            begin_read_only(self.session)
            kept = AccessService(self.session).readable_channels(guild_id, user)
            self.session.commit()
            reads.keep_readable_channels(guild_id, user.id, kept)
        return kept.channels, kept.readable
