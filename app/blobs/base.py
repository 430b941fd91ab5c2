"""The blob store interface: where the bytes of attachments live, apart from the messages that name them.

Contract, for every backend:
- Keys are ``/``-separated strings of ASCII letters, digits, ``.``, ``_`` and ``-`` (the service makes them from
  snowflakes: ``{channel_id}/{attachment_id}``); a backend may refuse any other key with ValueError.
- :meth:`BlobStore.put` is atomic: a reader sees the whole blob or none of it, never a partial one, even if the
  writer dies midway. Writing a key again replaces it whole.
- Blobs are streamed both ways in chunks; no method holds a whole blob in memory.
- "Not found" is ``None`` from :meth:`BlobStore.stat` and :class:`BlobNotFound` from :meth:`BlobStore.read`.
- :meth:`BlobStore.delete` is idempotent: deleting a missing key is not an error.
- Operational failures (timeouts, refused connections, a full disk) reach the caller only as
  :class:`BlobStoreUnavailable` (answered 503 with ``Retry-After``).
"""
from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

#: Bytes per chunk when streaming a blob in or out.
CHUNK_SIZE = 256 * 1024
_KEY = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


class BlobNotFound(Exception):
    """No blob under the key."""


class BlobStoreUnavailable(Exception):
    """The blob store could not answer in time; the request may be retried later."""

    def __init__(self, message: str = "blob store unavailable", retry_after: float = 1.0):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class BlobInfo:
    size: int
    content_type: str


def check_key(key: str) -> str:
    if not _KEY.match(key) or any(part in (".", "..") for part in key.split("/")):
        raise ValueError(f"not a blob key: {key!r}")
    return key


class BlobStore(ABC):
    backend: str = "abstract"

    @abstractmethod
    def put(self, key: str, source: BinaryIO, content_type: str) -> int:
        """Store what ``source`` holds from its current position to its end under ``key`` with its content
        type, atomically; returns the number of bytes stored."""

    @abstractmethod
    def stat(self, key: str) -> BlobInfo | None:
        """The blob's size and content type, or None when there is no blob under ``key``."""

    @abstractmethod
    def read(self, key: str, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
        """The bytes ``[start, stop)`` of the blob (to its end when ``stop`` is None), in chunks.

        Raises :class:`BlobNotFound` at once, before the first chunk, when there is no blob under ``key``.
        """

    @abstractmethod
    def delete(self, keys: Iterable[str]) -> None:
        """Delete the blobs under ``keys``; missing ones are skipped."""

    @abstractmethod
    def delete_under(self, prefix: str) -> None:
        """Delete every blob whose key starts with ``prefix/`` (a channel's files when it is deleted)."""

    @abstractmethod
    def ping(self) -> None:
        """Raise :class:`BlobStoreUnavailable` unless the store answers (readiness)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections (worker exit)."""
