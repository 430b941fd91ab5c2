"""The embedded blob store: files under a directory, for a service on one host (BLOB_STORE=filesystem).

Each blob is two files: ``<key>`` (the bytes) and ``<key>.type`` (its content type). A put streams into a
temporary file in the same directory tree, fsyncs it and renames it into place, so a reader sees a whole blob or
none; the type file is written first, so a visible blob always has one.

Disk reads and writes run on the worker's hub: each call moves at most CHUNK_SIZE bytes, which the page cache
takes in well under a millisecond, so no request holds the hub for long; a threadpool would cost more per chunk.
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from app.blobs.base import CHUNK_SIZE, BlobInfo, BlobNotFound, BlobStore, BlobStoreUnavailable, check_key

_TYPE_SUFFIX = ".type"
#: Failures of the disk rather than of the caller.
_OPERATIONAL = (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS)


class FilesystemBlobStore(BlobStore):
    backend = "filesystem"

    def __init__(self, directory: str | os.PathLike):
        self.root = Path(directory)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, source: BinaryIO, content_type: str) -> int:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._write_atomically(path.with_name(path.name + _TYPE_SUFFIX), [content_type.encode()])
            return self._write_atomically(path, iter(lambda: source.read(CHUNK_SIZE), b""))
        except OSError as exc:
            if exc.errno in _OPERATIONAL:
                raise BlobStoreUnavailable(f"cannot write blob: {exc.strerror}") from exc
            raise

    @staticmethod
    def _write_atomically(path: Path, chunks: Iterable[bytes]) -> int:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
        size = 0
        try:
            with os.fdopen(handle, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return size

    def stat(self, key: str) -> BlobInfo | None:
        path = self._path(key)
        try:
            size = path.stat().st_size
            content_type = path.with_name(path.name + _TYPE_SUFFIX).read_text()
        except FileNotFoundError:
            return None
        return BlobInfo(size=size, content_type=content_type)

    def read(self, key: str, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
        try:
            handle = open(self._path(key), "rb")  # noqa: SIM115  (closed by the generator below)
        except FileNotFoundError:
            raise BlobNotFound(key) from None
        return self._chunks(handle, start, stop)

    @staticmethod
    def _chunks(handle: BinaryIO, start: int, stop: int | None) -> Iterator[bytes]:
        with handle:
            handle.seek(start)
            remaining = None if stop is None else max(stop - start, 0)
            while remaining is None or remaining > 0:
                chunk = handle.read(CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining))
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            path = self._path(key)
            # The bytes first: a blob is visible while its bytes exist.
            path.unlink(missing_ok=True)
            path.with_name(path.name + _TYPE_SUFFIX).unlink(missing_ok=True)

    def delete_under(self, prefix: str) -> None:
        shutil.rmtree(self._path(prefix), ignore_errors=True)

    def ping(self) -> None:
        if not os.access(self.root if self.root.exists() else self.root.parent, os.W_OK):
            raise BlobStoreUnavailable(f"{self.root} is not writable")

    def close(self) -> None:
        """Nothing to release: files are opened per call."""
