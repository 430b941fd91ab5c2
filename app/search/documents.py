"""From what the stream and the store say about messages to what the index keeps.

One path for both: the indexer reads message objects in Discord's wire form from ``MESSAGE_CREATE`` and
``MESSAGE_UPDATE`` events, and the reindexer turns stored messages into the same form first, so a message
is indexed the same way whichever route it took. Attachments, stickers and polls count as soon as the message
objects carry them (``attachments[].content_type``, ``sticker_items``, ``poll``).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from app.events.base import Event
from app.search.base import (
    AuthorType,
    Delete,
    DeleteChannel,
    GuildCreated,
    Has,
    IndexChange,
    SearchDocument,
    SetPins,
    Upsert,
)
from app.search.text import index_text

#: What Discord's ``has:link`` finds: a URL with a scheme in the content.
_LINK = re.compile(r"\bhttps?://[^\s<]+", re.IGNORECASE)
_MEDIA = (("image/", Has.IMAGE), ("video/", Has.VIDEO), ("audio/", Has.SOUND))


def _has(message: Mapping[str, Any]) -> Has:
    found = Has(0)
    if _LINK.search(message.get("content") or ""):
        found |= Has.LINK
    embeds = message.get("embeds") or []
    if embeds:
        found |= Has.EMBED
        if any(isinstance(e, dict) and e.get("url") for e in embeds):
            found |= Has.LINK
    attachments = message.get("attachments") or []
    if attachments:
        found |= Has.FILE
    for attachment in attachments:
        content_type = (attachment.get("content_type") or "") if isinstance(attachment, dict) else ""
        for prefix, flag in _MEDIA:
            if content_type.startswith(prefix):
                found |= flag
    if message.get("sticker_items") or message.get("stickers"):
        found |= Has.STICKER
    if message.get("poll"):
        found |= Has.POLL
    return found


def _author_type(message: Mapping[str, Any]) -> AuthorType:
    if message.get("webhook_id"):
        return AuthorType.WEBHOOK
    return AuthorType.BOT if (message.get("author") or {}).get("bot") else AuthorType.USER


def _version(message: Mapping[str, Any]) -> int:
    edited = message.get("edited_timestamp")
    if not edited:
        return 0
    moment = datetime.fromisoformat(edited)
    return int(moment.timestamp() * 1_000_000)


def document_of(guild_id: int, message: Mapping[str, Any]) -> SearchDocument:
    """The document of a message object in wire form (ids as strings or integers)."""
    return SearchDocument(
        message_id=int(message["id"]), guild_id=guild_id, channel_id=int(message["channel_id"]),
        author_id=int(message["author"]["id"]), author_type=_author_type(message),
        text=index_text(message.get("content") or ""),
        mentions=tuple(sorted({int(user["id"]) for user in message.get("mentions") or ()})),
        mention_everyone=bool(message.get("mention_everyone")), has=_has(message),
        pinned=bool(message.get("pinned")), version=_version(message))


def changes_of(events: Iterable[Event], pins_of: Callable[[int], frozenset[int]]) -> list[IndexChange]:
    """The index changes of a batch of events, in order. ``pins_of(channel_id)`` reads a channel's pinned ids
    from the store, now: a pin event says only that the pins changed. Events that touch nothing searchable
    (reactions, roles, members) give nothing; reactions are read from the store when results are served."""
    changes: list[IndexChange] = []
    for event in events:
        data = event.data
        if event.type in ("MESSAGE_CREATE", "MESSAGE_UPDATE"):
            if event.guild_id is not None:
                changes.append(Upsert(document_of(event.guild_id, data)))
        elif event.type == "MESSAGE_DELETE":
            changes.append(Delete((int(data["id"]),)))
        elif event.type == "MESSAGE_DELETE_BULK":
            changes.append(Delete(tuple(int(i) for i in data["ids"])))
        elif event.type == "CHANNEL_PINS_UPDATE":
            if event.guild_id is not None and event.channel_id is not None:
                changes.append(SetPins(event.channel_id, pins_of(event.channel_id)))
        elif event.type in ("CHANNEL_DELETE", "THREAD_DELETE"):
            changes.append(DeleteChannel(int(data["id"])))
        elif event.type == "GUILD_CREATE":
            changes.append(GuildCreated(int(data["id"])))
    return changes
