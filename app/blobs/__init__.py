"""Attachments' bytes: the blob store interface (base.py), its backends, and signed links (links.py).

``build_blob_store`` is the one place a backend is chosen, from ``BLOB_STORE``.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

from app.blobs.base import BlobStore
from config import Settings

_KEY_FILE = ".signing-key"


def build_blob_store(settings: Settings) -> BlobStore:
    if settings.blob_store == "s3":
        from app.blobs.s3 import S3BlobStore

        return S3BlobStore(settings.blob_s3_bucket, endpoint_url=settings.blob_s3_endpoint_url or None,
                           region=settings.blob_s3_region, prefix=settings.blob_s3_prefix)
    from app.blobs.filesystem import FilesystemBlobStore

    return FilesystemBlobStore(settings.blob_directory)


def signing_key(settings: Settings) -> bytes:
    """ATTACHMENT_SIGNING_KEY, or with the filesystem store a random key kept beside the files, created once by
    whichever process comes first (every worker of the host then reads the same one)."""
    if settings.attachment_signing_key:
        return settings.attachment_signing_key.encode()
    path = Path(settings.blob_directory) / _KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole under a temporary name, then linked into place: link fails if another process won the
        # race, and nobody ever reads a half-written key.
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
        try:
            with os.fdopen(handle, "w") as out:
                out.write(secrets.token_hex(32))
                out.flush()
                os.fsync(out.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    return path.read_text().strip().encode()
