"""The read path's memory: what a worker keeps between requests, and how every request checks it is still true.

Without it, reading a page of a channel costs a dozen queries: the token and its user; the channel, guild,
member, roles and overwrites of the permission check; the page, its reactions and its authors. Nearly all of
that changes rarely. Each worker keeps (:class:`ReadCache`):

- tokens with their users, users, a user's permissions in a channel and which of a guild's channels they may
  read (for search), valid while ``metadata_version`` is
  unchanged: one row that database triggers bump on every write to the tables they come from, whoever makes it
  (migration 0005);
- pages of messages, valid while that version and the channel's ``messages_version`` are unchanged. The
  service-level write path (app/services/channel_writes.py) bumps the latter with every write to a channel's
  messages, whichever process makes it.

A request uses the cache through one :class:`ReadPath`: :class:`RequestCache` reads the metadata version once
(with the request channel's messages version, in the same query) and uses only entries kept under exactly those
versions. An entry is kept under the versions read *before* loading it, so it may be newer than its versions but
never older: no request is answered with less than a request starting after the last acknowledged write would
see, whichever worker or process wrote. :data:`NO_CACHE` is the read path that keeps nothing (commands, tests).

Greenlets of a worker share one cache; its maps only change between switches, so they need no lock.
"""
from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from cachetools import LRUCache, TTLCache
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from app.domain import ChannelPermissions, KeptToken, ReadableChannels, UserSnapshot
from models import Channel, MetadataVersion
from models.base import read_one_row

#: A page is dropped this long after it was read even if nothing bumped its versions: should a bump ever be
#: lost (the database failing right after a message write), the staleness it can cause is bounded.
PAGE_SECONDS = 60.0

_METADATA_VERSION = select(MetadataVersion.version).where(MetadataVersion.id == 1).scalar_subquery()
_MESSAGES_VERSION = select(Channel.messages_version).where(Channel.id == bindparam("channel_id")).scalar_subquery()
_READ_METADATA_VERSION = select(_METADATA_VERSION)
_READ_MESSAGES_VERSION = select(_MESSAGES_VERSION)
_READ_BOTH_VERSIONS = select(_METADATA_VERSION, _MESSAGES_VERSION)


@dataclass(frozen=True)
class KeptPage:
    """A page of a channel as every viewer may be answered it: ``bundle`` is the service's page with its
    reactions as nobody sees them (``me`` false); when ``has_reactions``, each viewer's ``me`` is read again, and
    when ``has_attachments``, its files' links are signed again for each request (under the host it came to)."""

    bundle: Any
    has_reactions: bool
    has_attachments: bool = False


class ReadPath:
    """One request's use of the worker's memory. Every lookup may miss (None), and then the caller loads from the
    database or the store and offers the result back with the matching ``keep_*``.

    This base class is the null read path: it misses every time and keeps nothing.
    """

    def token(self, token_id: int) -> KeptToken | None:
        return None

    def keep_token(self, token_id: int, token: KeptToken) -> None:
        pass

    def user(self, user_id: int) -> UserSnapshot | None:
        return None

    def keep_user(self, user: UserSnapshot) -> None:
        pass

    def channel_permissions(self, channel_id: int, user_id: int) -> ChannelPermissions | None:
        return None

    def keep_channel_permissions(self, user_id: int, permissions: ChannelPermissions) -> None:
        pass

    def readable_channels(self, guild_id: int, user_id: int) -> ReadableChannels | None:
        return None

    def keep_readable_channels(self, guild_id: int, user_id: int, readable: ReadableChannels) -> None:
        pass

    def page(self, channel_id: int, key: Hashable) -> KeptPage | None:
        """A kept page of the channel; after a miss, :meth:`keep_page` keeps the page loaded for ``key``."""
        return None

    def keep_page(self, channel_id: int, key: Hashable, page: KeptPage) -> None:
        pass


#: The read path of commands and of code without a worker cache: it keeps nothing.
NO_CACHE = ReadPath()


class ReadCache:
    """One per worker. ``entries`` bounds each kind of metadata entry, ``pages`` the pages (0: none kept)."""

    def __init__(self, *, entries: int = 10_000, pages: int = 256):
        self._version = 0
        self.tokens: LRUCache = LRUCache(entries)
        self.users: LRUCache = LRUCache(entries)
        self.permissions: LRUCache = LRUCache(entries)
        self.readable_channels: LRUCache = LRUCache(entries)
        self.pages: TTLCache | None = TTLCache(pages, PAGE_SECONDS) if pages else None

    def for_request(self, session: Session, channel_id: int | None = None) -> RequestCache:
        return RequestCache(self, session, channel_id)

    @property
    def keeps_pages(self) -> bool:
        return self.pages is not None

    def advance(self, version: int | None) -> None:
        # Any other version, not only a greater one: a database restored from a backup goes back in versions.
        # Requests straddling a change make the map switch back and forth for a moment, which costs misses,
        # never a wrong answer: an entry is only added and used under the version its request read.
        if version is not None and version != self._version:
            self._version = version
            for kept in (self.tokens, self.users, self.permissions, self.readable_channels, self.pages):
                if kept is not None:
                    kept.clear()

    def is_current(self, version: int | None) -> bool:
        # No version (its row deleted by hand) means nothing can be checked, so nothing is kept or used.
        return version is not None and version == self._version


class RequestCache(ReadPath):
    """The read path through a worker's :class:`ReadCache`, for one request and its session: the metadata version
    is read once, on first use, with the messages version of ``channel_id`` (the request's channel) in the same
    query.

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
            self._cache.advance(self._version)
        return self._version

    def _messages_version(self, channel_id: int) -> int | None:
        """The channel's messages version as this request first read it; None if there is no such channel."""
        if channel_id not in self._messages_versions:
            self._messages_versions[channel_id] = self._read(_READ_MESSAGES_VERSION, {"channel_id": channel_id})[0]
        return self._messages_versions[channel_id]

    def _read(self, statement, parameters: dict):
        if self._session.in_transaction():
            # The session holds the connection (SQLite has one per process): read in its transaction.
            return self._session.execute(statement, parameters).one()
        return read_one_row(self._session.get_bind(), statement, parameters)

    def _current(self) -> bool:
        return self._cache.is_current(self.metadata_version)

    def token(self, token_id: int) -> KeptToken | None:
        return self._cache.tokens.get(token_id) if self._current() else None

    def keep_token(self, token_id: int, token: KeptToken) -> None:
        if self._current():
            self._cache.tokens[token_id] = token

    def user(self, user_id: int) -> UserSnapshot | None:
        return self._cache.users.get(user_id) if self._current() else None

    def keep_user(self, user: UserSnapshot) -> None:
        if self._current():
            self._cache.users[user.id] = user

    def channel_permissions(self, channel_id: int, user_id: int) -> ChannelPermissions | None:
        if not self._current():
            return None
        kept = self._cache.permissions.get((channel_id, user_id))
        if kept is None or (kept.until is not None and datetime.now(timezone.utc) >= kept.until):
            return None
        return kept

    def keep_channel_permissions(self, user_id: int, permissions: ChannelPermissions) -> None:
        if self._current():
            self._cache.permissions[(permissions.channel.id, user_id)] = permissions

    def readable_channels(self, guild_id: int, user_id: int) -> ReadableChannels | None:
        if not self._current():
            return None
        kept = self._cache.readable_channels.get((guild_id, user_id))
        if kept is None or (kept.until is not None and datetime.now(timezone.utc) >= kept.until):
            return None
        return kept

    def keep_readable_channels(self, guild_id: int, user_id: int, readable: ReadableChannels) -> None:
        if self._current():
            self._cache.readable_channels[(guild_id, user_id)] = readable

    def page(self, channel_id: int, key: Hashable) -> KeptPage | None:
        if self._cache.pages is None or not self._current():
            return None
        version = self._messages_version(channel_id)
        if version is None:
            return None
        kept = self._cache.pages.get((channel_id, key))
        if kept is None or kept[0] != version:
            return None
        return kept[1]

    def keep_page(self, channel_id: int, key: Hashable, page: KeptPage) -> None:
        # Kept under the version :meth:`page` read before the page was loaded, never one read after.
        version = self._messages_versions.get(channel_id)
        if self._cache.pages is not None and version is not None and self._current():
            self._cache.pages[(channel_id, key)] = (version, page)
