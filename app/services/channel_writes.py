"""The one path by which writes reach a channel's messages, and the channel's bookkeeping that follows them."""
from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import TypeVar

from sqlalchemy import bindparam, case, or_, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from app.messages.base import MessageStore, StoreUnavailable
from models import Channel
from models.base import READ_ONLY

log = logging.getLogger(__name__)
Result = TypeVar("Result")

_BUMP_VERSION = (update(Channel).where(Channel.id == bindparam("channel_id"))
                 .values(messages_version=Channel.messages_version + 1))
_BUMP_AND_ADVANCE = _BUMP_VERSION.values(last_message_id=case(
    (or_(Channel.last_message_id.is_(None), Channel.last_message_id < bindparam("created")), bindparam("created")),
    else_=Channel.last_message_id))
_BUMP_AND_REPLACE = _BUMP_VERSION.values(last_message_id=case(
    (Channel.last_message_id == bindparam("deleted_last"), bindparam("replacement")),
    else_=Channel.last_message_id))
_LAST_MESSAGE_ID = select(Channel.last_message_id).where(Channel.id == bindparam("channel_id"))


class ChannelWrites:
    """Every write to a channel's messages goes through :meth:`apply`: the store write, then, in one transaction
    of the metadata database, what the channel records of it:

    - ``messages_version`` grows, whether the write succeeded or not (a failed write may still have landed).
      It is how every worker's read cache learns that the channel changed (app/read_cache.py).
    - ``last_message_id`` moves up to a message created, or, when the message it names is deleted, back to the
      newest one left.

    A failure of that transaction is reported as the store being unavailable, so that the writer is not told
    its write succeeded while pages kept elsewhere still show the channel without it.
    """

    def __init__(self, engine: Engine, store: MessageStore):
        self._engine = engine
        self._store = store

    def apply(self, channel_id: int, write: Callable[[], Result], *, created: int | None = None,
              deleted: Collection[int] = ()) -> Result:
        """Run ``write`` (a call of the message store for ``channel_id``) and record it. ``created``: the id of a
        message it creates; ``deleted``: the ids of messages it deletes."""
        try:
            result = write()
        except BaseException:
            self._record(channel_id, {"channel_id": channel_id}, _BUMP_VERSION)
            raise
        if created is not None:
            self._record(channel_id, {"channel_id": channel_id, "created": created}, _BUMP_AND_ADVANCE)
        elif deleted:
            self._record(channel_id, *self._last_message_after(channel_id, deleted))
        else:
            self._record(channel_id, {"channel_id": channel_id}, _BUMP_VERSION)
        return result

    def _last_message_after(self, channel_id: int, deleted: Collection[int]) -> tuple[dict, object]:
        """The statement that moves ``last_message_id`` off a deleted message, to the newest one left.

        Read before the write transaction (the newest message is a store read, which on SQLite needs the
        process's one connection); the update only applies if nothing moved ``last_message_id`` meanwhile.
        """
        try:
            with self._engine.connect().execution_options(**READ_ONLY) as connection:
                last = connection.execute(_LAST_MESSAGE_ID, {"channel_id": channel_id}).scalar()
        except sa_exc.DBAPIError as error:
            raise StoreUnavailable("channel unavailable") from error
        if last is None or last not in deleted:
            return {"channel_id": channel_id}, _BUMP_VERSION
        newest = self._store.list_messages(channel_id, limit=1)
        return ({"channel_id": channel_id, "deleted_last": last, "replacement": newest[0].id if newest else None},
                _BUMP_AND_REPLACE)

    def _record(self, channel_id: int, parameters: dict, statement) -> None:
        try:
            with self._engine.begin() as connection:
                connection.execute(statement, parameters)
        except sa_exc.DBAPIError as error:
            log.error("could not record a write to channel %s: %s", channel_id, error)
            raise StoreUnavailable("channel version unavailable") from error
