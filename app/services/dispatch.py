"""The events of the service's writes, in Discord's gateway dispatch shape (``t`` and ``d``).

Each builder returns the :class:`~app.events.base.Event` of one write; ``d`` is the object as Discord's gateway
sends it, with ``guild_id``. The services hand them to the write that produces them (``ChannelWrites`` for
messages, the metadata transaction otherwise), so an event is recorded exactly when its write commits.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.events import outbox
from app.events.base import Event
from app.services.emoji import Emoji
from app.services.wire import timestamp


class Dispatch:
    """Builds events with ids from ``ids`` (the process's snowflake generator: unique across processes)."""

    def __init__(self, ids, *, backfill: bool = False):
        self.ids = ids
        self.backfill = backfill

    def event(self, type_: str, data: dict[str, Any], *, guild_id: int | None, channel_id: int | None) -> Event:
        payload = {**data, "guild_id": str(guild_id)} if guild_id is not None else data
        return Event(id=self.ids.next_id(), type=type_, guild_id=guild_id, channel_id=channel_id, data=payload,
                     backfill=self.backfill)

    # -- messages -------------------------------------------------------------------------------------------

    def message_created(self, message: dict[str, Any], *, guild_id: int | None, channel_id: int) -> Event:
        return self.event("MESSAGE_CREATE", message, guild_id=guild_id, channel_id=channel_id)

    def message_updated(self, message: dict[str, Any], *, guild_id: int | None, channel_id: int) -> Event:
        return self.event("MESSAGE_UPDATE", message, guild_id=guild_id, channel_id=channel_id)

    def message_deleted(self, message_id: int, *, guild_id: int | None, channel_id: int) -> Event:
        return self.event("MESSAGE_DELETE", {"id": str(message_id), "channel_id": str(channel_id)},
                          guild_id=guild_id, channel_id=channel_id)

    def messages_deleted(self, message_ids: list[int], *, guild_id: int | None, channel_id: int) -> Event:
        return self.event("MESSAGE_DELETE_BULK", {"ids": [str(i) for i in message_ids], "channel_id": str(channel_id)},
                          guild_id=guild_id, channel_id=channel_id)

    def typing_started(self, data: dict[str, Any], *, guild_id: int | None, channel_id: int) -> Event:
        """TYPING_START: ``channel_id``, ``user_id``, ``timestamp`` (unix seconds) and, in a guild, ``member``."""
        return self.event("TYPING_START", data, guild_id=guild_id, channel_id=channel_id)

    # -- reactions ------------------------------------------------------------------------------------------

    def _reaction(self, type_: str, message_id: int, emoji: Emoji | None, *, guild_id: int | None, channel_id: int,
                  **extra: Any) -> Event:
        data: dict[str, Any] = {"channel_id": str(channel_id), "message_id": str(message_id), **extra}
        if emoji is not None:
            data["emoji"] = emoji.as_json()
        return self.event(type_, data, guild_id=guild_id, channel_id=channel_id)

    def reaction_added(self, message_id: int, emoji: Emoji, user_id: int, message_author_id: int, *,
                       guild_id: int | None, channel_id: int) -> Event:
        return self._reaction("MESSAGE_REACTION_ADD", message_id, emoji, guild_id=guild_id, channel_id=channel_id,
                              user_id=str(user_id), message_author_id=str(message_author_id), burst=False,
                              burst_colors=[], type=0)

    def reaction_removed(self, message_id: int, emoji: Emoji, user_id: int, *, guild_id: int | None,
                         channel_id: int) -> Event:
        return self._reaction("MESSAGE_REACTION_REMOVE", message_id, emoji, guild_id=guild_id, channel_id=channel_id,
                              user_id=str(user_id), burst=False, type=0)

    def reactions_cleared(self, message_id: int, *, guild_id: int | None, channel_id: int) -> Event:
        return self._reaction("MESSAGE_REACTION_REMOVE_ALL", message_id, None, guild_id=guild_id,
                              channel_id=channel_id)

    def emoji_cleared(self, message_id: int, emoji: Emoji, *, guild_id: int | None, channel_id: int) -> Event:
        return self._reaction("MESSAGE_REACTION_REMOVE_EMOJI", message_id, emoji, guild_id=guild_id,
                              channel_id=channel_id)

    # -- pins and metadata ----------------------------------------------------------------------------------

    def pins_updated(self, last_pin: datetime | None, *, guild_id: int | None, channel_id: int) -> Event:
        return self.event("CHANNEL_PINS_UPDATE", {"channel_id": str(channel_id),
                                                  "last_pin_timestamp": timestamp(last_pin)},
                          guild_id=guild_id, channel_id=channel_id)

    def channel(self, type_: str, channel: dict[str, Any], *, guild_id: int | None, channel_id: int) -> Event:
        """CHANNEL_CREATE, CHANNEL_UPDATE or CHANNEL_DELETE with the channel object."""
        return self.event(type_, channel, guild_id=guild_id, channel_id=channel_id)

    def webhooks_updated(self, *, guild_id: int, channel_id: int) -> Event:
        """WEBHOOKS_UPDATE: a channel's webhooks changed (created, edited, moved or deleted)."""
        return self.event("WEBHOOKS_UPDATE", {"channel_id": str(channel_id)}, guild_id=guild_id,
                          channel_id=channel_id)
    def thread(self, type_: str, data: dict[str, Any], *, guild_id: int, channel_id: int) -> Event:
        """THREAD_CREATE/UPDATE (a thread channel), THREAD_DELETE (id, parent_id, type; recorded on the parent,
        whose viewers learn of it), THREAD_MEMBERS_UPDATE (id, member_count, added_members, removed_member_ids)
        or THREAD_MEMBER_UPDATE (the user's own thread member object)."""
        return self.event(type_, data, guild_id=guild_id, channel_id=channel_id)

    def guild(self, type_: str, data: dict[str, Any], *, guild_id: int) -> Event:
        """A guild-wide event (GUILD_CREATE/UPDATE, GUILD_ROLE_*, GUILD_MEMBER_*) with its ``d``."""
        return self.event(type_, data, guild_id=guild_id, channel_id=None)


class SessionEvents:
    """Records events in the transaction of an ORM session, for the metadata writes (channels, guilds, roles,
    members): the session is flushed first, so that its row changes (and their row locks) come before the events'
    outbox rows, which then commit or roll back with them. Built without a :class:`Dispatch` it records nothing
    (``EVENT_BUS=off``)."""

    def __init__(self, dispatch: Dispatch | None):
        self.dispatch = dispatch

    def record(self, session: Session, build: Callable[[Dispatch], Iterable[Event]]) -> None:
        """Append the events ``build`` makes to the outbox, in ``session``'s open transaction."""
        if self.dispatch is None:
            return
        session.flush()
        outbox.append(session.connection(), list(build(self.dispatch)))


#: For code whose writes are not announced (tests' factories): records nothing.
NO_EVENTS = SessionEvents(None)


def session_events(ids, *, enabled: bool) -> SessionEvents:
    return SessionEvents(Dispatch(ids) if enabled else None)
