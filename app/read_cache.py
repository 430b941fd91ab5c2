"""What a worker keeps in memory between requests, and how every request checks that it is still true.

Without it, reading a page of a channel costs a dozen queries: the token and its user; the channel, guild,
member, roles and overwrites of the permission check; the page, its reactions and its authors. Nearly all of
that changes rarely. Each worker keeps:

- tokens with their users, users, and a user's permissions in a channel, valid while ``metadata_version`` is
  unchanged: one row that database triggers bump on every write to the tables they come from, whoever makes it
  (migration 0005);
- pages of messages (``MessageService.list_messages``), valid while that version and the channel's
  ``messages_version`` are unchanged. :class:`ChannelVersions`, a message store wrapper, bumps the latter after
  every write to a channel's messages through this service or its commands.

A request reads the metadata version once (:class:`CachedView`) and the channel's messages version when it
reads a page, and uses only entries kept under exactly those versions. An entry is kept under the versions read
*before* loading it, so it may be newer than its versions but never older: no request is answered with less
than a request starting after the last acknowledged write would see, whichever worker or process wrote.

Greenlets of a worker share one cache; its maps only change between switches, so they need no lock.
"""
from __future__ import annotations

import logging
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime

from cachetools import LRUCache, TTLCache
from sqlalchemy import Engine, bindparam, case, or_, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Compiled
from sqlalchemy.orm import Session

from app.messages.base import Message, MessageStore, StoreUnavailable
from app.messages.wrapping import wrap_interface
from models import Channel, MetadataVersion, User

log = logging.getLogger(__name__)

#: Kinds of metadata entries, each its own LRU map.
KINDS = ("token", "user", "access")
#: A page is dropped this long after it was read even if nothing bumped its versions: should a bump ever be
#: lost (the database failing right after a message write), the staleness it can cause is bounded.
PAGE_SECONDS = 60.0

_METADATA_VERSION = select(MetadataVersion.version).where(MetadataVersion.id == 1).scalar_subquery()
_MESSAGES_VERSION = select(Channel.messages_version).where(Channel.id == bindparam("channel_id")).scalar_subquery()
_READ_METADATA_VERSION = select(_METADATA_VERSION)
_READ_MESSAGES_VERSION = select(_MESSAGES_VERSION)
_READ_BOTH_VERSIONS = select(_METADATA_VERSION, _MESSAGES_VERSION)
_BUMP_MESSAGES_VERSION = (update(Channel).where(Channel.id == bindparam("channel_id"))
                          .values(messages_version=Channel.messages_version + 1))
_BUMP_AND_ADVANCE = _BUMP_MESSAGES_VERSION.values(last_message_id=case(
    (or_(Channel.last_message_id.is_(None), Channel.last_message_id < bindparam("created")), bindparam("created")),
    else_=Channel.last_message_id))


@dataclass(frozen=True)
class UserSnapshot:
    """What requests need of a user: who it is and how it is shown. Safe to share between requests."""

    id: int
    username: str
    global_name: str | None
    avatar: str | None
    bot: bool

    @classmethod
    def of(cls, user: User) -> UserSnapshot:
        return cls(id=user.id, username=user.username, global_name=user.global_name, avatar=user.avatar,
                   bot=user.bot)


class ReadCache:
    """One per worker. ``entries`` bounds each kind of metadata entry, ``pages`` the pages (0: none kept)."""

    def __init__(self, *, entries: int = 10_000, pages: int = 256):
        self._version = 0
        self._kept = {kind: LRUCache(entries) for kind in KINDS}
        self._pages = TTLCache(pages, PAGE_SECONDS) if pages else None

    def view(self, session: Session, channel_id: int | None = None) -> CachedView:
        return CachedView(self, session, channel_id)

    @property
    def keeps_pages(self) -> bool:
        return self._pages is not None

    def _advance(self, version: int | None) -> None:
        # Any other version, not only a greater one: a database restored from a backup goes back in versions.
        # Requests straddling a change make the map switch back and forth for a moment, which costs misses,
        # never a wrong answer: an entry is only added and used under the version its request read.
        if version is not None and version != self._version:
            self._version = version
            for kept in self._kept.values():
                kept.clear()
            if self._pages is not None:
                self._pages.clear()


class CachedView:
    """One request's use of the cache, through its session: the metadata version is read once, on first use,
    with the messages version of ``channel_id`` (the request's channel) in the same query.

    A request whose version is not the cache's (another request saw a different one since) neither reads nor
    adds entries.
    """

    def __init__(self, cache: ReadCache, session: Session, channel_id: int | None = None):
        self._cache = cache
        self._session = session
        self._channel_id = channel_id
        self._version: int | None = None
        self._messages_versions: dict[int, int | None] = {}

    @property
    def metadata_version(self) -> int | None:
        if self._version is None:
            if self._channel_id is None:
                self._version = self._read(_READ_METADATA_VERSION, {})[0]
            else:
                self._version, self._messages_versions[self._channel_id] = self._read(
                    _READ_BOTH_VERSIONS, {"channel_id": self._channel_id})
            self._cache._advance(self._version)
        return self._version

    def messages_version(self, channel_id: int) -> int | None:
        """The channel's messages version as this request first read it; None if there is no such channel."""
        if channel_id not in self._messages_versions:
            self._messages_versions[channel_id] = self._read(_READ_MESSAGES_VERSION, {"channel_id": channel_id})[0]
        return self._messages_versions[channel_id]

    def _read(self, statement, parameters: dict):
        if self._session.in_transaction():
            # The session holds the connection (SQLite has one per process): read in its transaction.
            return self._session.execute(statement, parameters).one()
        return _read_one_row(self._session.get_bind(), statement, parameters)

    @property
    def keeps_pages(self) -> bool:
        return self._cache.keeps_pages

    def _current(self) -> bool:
        # No version (its row deleted by hand) means nothing can be checked, so nothing is kept or used.
        return self.metadata_version is not None and self.metadata_version == self._cache._version

    def get(self, kind: str, key: Hashable):
        return self._cache._kept[kind].get(key) if self._current() else None

    def keep(self, kind: str, key: Hashable, value) -> None:
        if self._current():
            self._cache._kept[kind][key] = value

    def page(self, channel_id: int, key: Hashable, messages_version: int):
        if self._cache._pages is None or not self._current():
            return None
        kept = self._cache._pages.get((channel_id, key))
        if kept is None or kept[0] != messages_version:
            return None
        return kept[1]

    def keep_page(self, channel_id: int, key: Hashable, messages_version: int, page) -> None:
        if self._cache._pages is not None and self._current():
            self._cache._pages[(channel_id, key)] = (messages_version, page)


#: Each version query compiled once per dialect.
_COMPILED: dict[tuple[int, str], Compiled] = {}


def _read_one_row(engine: Engine, statement, parameters: dict) -> tuple:
    """One row of a single-statement read on a pooled DBAPI connection, without SQLAlchemy's Connection.

    Every request runs one such read; through a Connection it costs about 100 us of Python (begin and commit
    events, result wrapping), through the bare cursor about 20 us. A single SELECT is consistent on its own, and
    the pool rolls back whatever the driver began when the connection is returned. Driver errors are raised as
    SQLAlchemy's, as from any other query, so that callers see one kind of database error.
    """
    key = (id(statement), engine.dialect.name)
    compiled = _COMPILED.get(key)
    if compiled is None:
        compiled = _COMPILED[key] = statement.compile(dialect=engine.dialect)
    sql = compiled.string
    values = compiled.construct_params(parameters)
    bound = [values[name] for name in compiled.positiontup] if compiled.positional else values
    dialect = engine.dialect
    dbapi = dialect.loaded_dbapi
    try:
        connection = engine.raw_connection()
    except dbapi.Error as error:
        raise sa_exc.DBAPIError.instance(sql, None, error, dbapi.Error, hide_parameters=True,
                                         connection_invalidated=True) from error
    try:
        cursor = connection.cursor()
        try:
            cursor.execute(sql, bound)
            return cursor.fetchone()
        finally:
            cursor.close()
    except dbapi.Error as error:
        lost = dialect.is_disconnect(error, connection.dbapi_connection, None)
        if lost:
            connection.invalidate(error)
        raise sa_exc.DBAPIError.instance(sql, None, error, dbapi.Error, hide_parameters=True,
                                         connection_invalidated=lost) from error
    finally:
        connection.close()


def still_valid(until: datetime | None, now: datetime) -> bool:
    return until is None or now < until


class ChannelVersions(MessageStore):
    """A MessageStore that bumps the channel's ``messages_version`` after every write to its messages, and
    moves its ``last_message_id`` up to a message it creates.

    The bump follows the write, successful or not (a failed write may have landed), in a transaction of its own
    on the metadata database. A bump that fails is reported as the store being unavailable, so the writer is
    not told its write succeeded while pages kept elsewhere still show the channel without it.
    """

    def __init__(self, inner: MessageStore, engine: Engine):
        self.inner = inner
        self.backend = inner.backend
        self._engine = engine

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"ChannelVersions({self.inner!r})"

    def create_message(self, message: Message) -> None:
        try:
            self.inner.create_message(message)
        except BaseException:
            self._bump(message.channel_id)
            raise
        self._bump(message.channel_id, created=message.id)

    def _bump(self, channel_id: int, created: int | None = None) -> None:
        statement, parameters = _BUMP_MESSAGES_VERSION, {"channel_id": channel_id}
        if created is not None:
            statement, parameters = _BUMP_AND_ADVANCE, {**parameters, "created": created}
        try:
            with self._engine.begin() as connection:
                connection.execute(statement, parameters)
        except sa_exc.DBAPIError as error:
            log.error("could not bump messages_version of channel %s: %s", channel_id, error)
            raise StoreUnavailable("channel version unavailable") from error


wrap_interface(ChannelVersions, ChannelVersions._bump)
