"""Rebuilding a guild's index from the message store, resumable, while the indexer keeps indexing new events.

The guild's documents are dropped and its state is ``indexing`` (searches answer 202); then its channels, in id
order, are read newest message first, in batches. Each batch is added with :meth:`SearchEngine.add_missing`,
which in one transaction inserts what is neither indexed nor tombstoned and moves the checkpoint (channel, oldest
message indexed), so a reindex killed at any moment resumes where its last batch committed and indexes every
message exactly once.

Concurrent events stay right: the indexer's upserts replace what a batch added (newer versions win), a batch
never overwrites a document the indexer wrote (it only adds missing ones), and a message deleted meanwhile has a
tombstone, so a batch that read it before the delete does not bring it back.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from sqlalchemy import Engine, select

from app.messages.base import Message, MessageStore
from app.search.base import GuildIndex, IndexState, SearchDocument, SearchEngine
from app.search.documents import document_of
from models import Channel, User
from models.base import READ_ONLY

BATCH_SIZE = 500


def stored_message_object(message: Message, author_is_bot: bool) -> dict[str, Any]:
    """The parts of a stored message's wire form that indexing reads (app.search.documents.document_of)."""
    return {
        "id": message.id, "channel_id": message.channel_id, "content": message.content,
        "author": {"id": message.author_id, "bot": author_is_bot},
        "mentions": [{"id": user_id} for user_id in message.mentions],
        "mention_everyone": message.mention_everyone,
        "embeds": orjson.loads(message.embeds_json) if message.embeds_json else [],
        # The stored attachment records carry what ``has:`` reads (content_type), as the events' objects do.
        "attachments": orjson.loads(message.attachments_json) if message.attachments_json else [],
        "pinned": message.pinned,
        "edited_timestamp": message.edited_at.isoformat() if message.edited_at is not None else None,
    }


class Reindexer:
    """Rebuilds guilds into ``engine`` from ``store`` (messages) and ``database`` (channels, authors).

    ``rate`` caps messages per second (None: as fast as it goes); ``progress(n)`` is told of every batch;
    ``should_stop()`` is asked between batches (a stopping worker leaves the checkpoint for its successor).
    """

    def __init__(self, engine: SearchEngine, database: Engine, store: MessageStore, *, owner: str,
                 batch_size: int = BATCH_SIZE, rate: float | None = None,
                 progress: Callable[[int], None] | None = None, should_stop: Callable[[], bool] = lambda: False):
        self.engine = engine
        self.database = database.execution_options(**READ_ONLY)
        self.store = store
        self.owner = owner
        self.batch_size = batch_size
        self.rate = rate
        self.progress = progress or (lambda count: None)
        self.should_stop = should_stop

    def channels(self, guild_id: int, after: int = 0) -> list[int]:
        with self.database.begin() as connection:
            return list(connection.execute(select(Channel.id).where(Channel.guild_id == guild_id, Channel.id > after)
                                           .order_by(Channel.id)).scalars())

    def count_messages(self, guild_id: int) -> int:
        """How many messages the guild holds (for a progress bar's total)."""
        return sum(self.store.count_messages(channel_id) for channel_id in self.channels(guild_id))

    def reindex(self, guild_id: int, *, restart: bool = False) -> GuildIndex | None:
        """Rebuild the guild, resuming its checkpoint unless ``restart`` (or it is not being rebuilt). Returns
        the final state, or None when :attr:`should_stop` interrupted it (the checkpoint stays)."""
        state = self.engine.guild_index(guild_id)
        if restart or state is None or state.state is IndexState.READY or state.started_at is None \
                or (state.channel_cursor == 0 and state.documents_indexed == 0):
            state = self.engine.begin_reindex(guild_id, self.owner)
        return self._run(state)

    def resume(self, state: GuildIndex) -> GuildIndex | None:
        """Carry on a claimed rebuild (``claim_reindex``); one never begun (a queued guild) begins now."""
        if state.channel_cursor == 0 and state.documents_indexed == 0:
            state = self.engine.begin_reindex(state.guild_id, self.owner)
        return self._run(state)

    def _run(self, state: GuildIndex) -> GuildIndex | None:
        guild_id = state.guild_id
        started, done = time.monotonic(), 0
        channel_cursor, message_cursor = state.channel_cursor, state.message_cursor
        channels = self.channels(guild_id, after=channel_cursor - 1 if message_cursor else channel_cursor)
        for channel_id in channels:
            before = message_cursor if channel_id == channel_cursor and message_cursor else None
            for documents, oldest in self._batches(guild_id, channel_id, before):
                if self.should_stop():
                    return None
                self.engine.add_missing(guild_id, documents, owner=self.owner, channel_cursor=channel_id,
                                        message_cursor=oldest)
                done += len(documents)
                self.progress(len(documents))
                self._keep_pace(started, done)
            # The channel is done: a resumed run starts at the next one.
            self.engine.add_missing(guild_id, [], owner=self.owner, channel_cursor=channel_id, message_cursor=0)
        self.engine.finish_reindex(guild_id)
        return self.engine.guild_index(guild_id)

    def _batches(self, guild_id: int, channel_id: int, before: int | None) -> Iterator[tuple[list[SearchDocument],
                                                                                           int]]:
        while True:
            messages = self.store.list_messages(channel_id, before=before, limit=self.batch_size)
            if not messages:
                return
            bots = self._bots({m.author_id for m in messages})
            yield ([document_of(guild_id, stored_message_object(m, m.author_id in bots)) for m in messages],
                   messages[-1].id)
            before = messages[-1].id

    def _bots(self, user_ids: set[int]) -> set[int]:
        with self.database.begin() as connection:
            return set(connection.execute(select(User.id).where(User.id.in_(user_ids), User.bot.is_(True)))
                       .scalars())

    def _keep_pace(self, started: float, done: int) -> None:
        if self.rate:
            ahead = done / self.rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
