"""Attachments: the files of a message, as Discord takes them (``attachments`` entries naming uploaded
``files[n]`` or, in an edit, the attachments to keep) and as it serves them.

A message stores its attachments' records (``Message.attachments_json``); their bytes live in the blob store
under ``{channel_id}/{attachment_id}``. Order of writes, so a failure never leaves a message pointing at nothing:
a create stores the blobs first, then the message (a failed message write leaves its blobs, since it may have
landed anyway); a delete or an edit that drops files deletes the message (or the records) first, then the blobs
(a failure there is logged and leaves them). Such orphan blobs cost storage, never correctness: nothing serves
them, as links are only made from records.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

import orjson

from app.blobs.base import BlobStore, BlobStoreUnavailable
from app.blobs.content import inspect_file, sanitize_filename
from app.blobs.links import AttachmentLinks, attachment_path
from app.errors import InvalidForm, ServiceUnavailable
from app.ids import InvalidSnowflake, parse_snowflake
from app.messages.base import Message

log = logging.getLogger(__name__)

#: Discord's limits: files per message, and the length of an attachment's description.
MAX_FILES = 10
MAX_DESCRIPTION_LENGTH = 1024


@dataclass
class Upload:
    """One uploaded file part: ``index`` is its n in ``files[n]``; ``file`` is open at its start."""

    index: int
    filename: str
    file: BinaryIO
    size: int


def blob_key(channel_id: int, attachment_id: int) -> str:
    return f"{channel_id}/{attachment_id}"


def attachment_records(message: Message) -> list[dict[str, Any]]:
    return orjson.loads(message.attachments_json) if message.attachments_json else []


def attachments_wire(message: Message, links: AttachmentLinks | None) -> list[dict[str, Any]]:
    """The message's attachment objects in Discord's form, with freshly signed links (a path without a host
    or signature when there is nothing to sign with, as in an export)."""
    wire = []
    for record in attachment_records(message):
        attachment_id = int(record["id"])
        url = (links.url(message.channel_id, attachment_id, record["filename"]) if links is not None
               else attachment_path(message.channel_id, attachment_id, record["filename"]))
        body = {"id": record["id"], "filename": record["filename"], "size": record["size"], "url": url,
                "proxy_url": url, "content_type": record["content_type"]}
        for optional in ("title", "description", "width", "height"):
            if record.get(optional) is not None:
                body[optional] = record[optional]
        wire.append(body)
    return wire


def records_from_wire(attachments: Any, field: Callable[[str], Exception]) -> str | None:
    """Attachment objects as an export wrote them, back to records; ``field(problem)`` makes the error."""
    if attachments is None:
        return None
    if not isinstance(attachments, list):
        raise field("attachments: expected a list")
    records = []
    for index, item in enumerate(attachments):
        if not isinstance(item, dict):
            raise field(f"attachments[{index}]: expected an object")
        try:
            record = {"id": str(parse_snowflake(item.get("id"))), "filename": sanitize_filename(str(item["filename"])),
                      "size": int(item["size"]), "content_type": str(item.get("content_type")
                                                                    or "application/octet-stream")}
        except (InvalidSnowflake, KeyError, TypeError, ValueError):
            raise field(f"attachments[{index}]: needs id, filename and size") from None
        for optional in ("title", "description", "width", "height"):
            if item.get(optional) is not None:
                record[optional] = item[optional]
        records.append(record)
    return orjson.dumps(records).decode() if records else None


def _entry_index(value: Any, position: int) -> int:
    """An ``attachments[].id`` as an int (uploads are numbered, kept attachments are snowflakes)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        return int(value)
    raise InvalidForm.field(("attachments", str(position), "id"), "NUMBER_TYPE_COERCE",
                            f'Value "{str(value)[:64]}" is not snowflake.')


class AttachmentService:
    """Stores uploads as blobs and works out which records a message keeps."""

    def __init__(self, blobs: BlobStore | None, ids):
        self.blobs = blobs
        self.ids = ids

    def plan(self, entries: list[dict[str, Any]] | None, uploads: list[Upload],
             existing: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[tuple[Upload, dict[str, Any]]]]:
        """Which existing records stay and which uploads become attachments (with their entry), validated.

        Without ``entries`` a create takes every upload and an edit with uploads keeps every existing file too;
        with them, exactly the listed ones, in their order, as Discord does.
        """
        by_index = {upload.index: upload for upload in uploads}
        kept_by_id = {int(record["id"]): record for record in existing}
        if entries is None:
            return existing, [(upload, {}) for upload in uploads]
        kept, new, seen = [], [], set()
        for position, entry in enumerate(entries):
            identifier = _entry_index(entry.get("id"), position)
            if identifier in seen:
                raise InvalidForm.field(("attachments", str(position), "id"), "BASE_TYPE_UNIQUE",
                                        "Each attachment may be listed once.")
            seen.add(identifier)
            if identifier in kept_by_id:
                kept.append(kept_by_id[identifier])
            elif identifier in by_index:
                new.append((by_index[identifier], entry))
            else:
                raise InvalidForm.field(("attachments", str(position), "id"), "ATTACHMENT_NOT_FOUND",
                                        "No uploaded file nor existing attachment has this id.")
        if len(kept) + len(new) > MAX_FILES:
            raise InvalidForm.field("attachments", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_FILES} or fewer in length.")
        return kept, new

    def store(self, channel_id: int, new: list[tuple[Upload, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Write the uploads' bytes to the blob store; their records, in order. When one fails, the blobs
        written before it are deleted again: no message names them yet."""
        records: list[dict[str, Any]] = []
        try:
            for upload, entry in new:
                records.append(self._store_one(channel_id, upload, entry))
        except BaseException:
            self.delete(channel_id, records)
            raise
        return records

    def _store_one(self, channel_id: int, upload: Upload, entry: dict[str, Any]) -> dict[str, Any]:
        filename = sanitize_filename(entry.get("filename") or upload.filename)
        kind = inspect_file(upload.file, filename)
        attachment_id = self.ids.next_id()
        self._require_store()
        try:
            size = self.blobs.put(blob_key(channel_id, attachment_id), upload.file, kind.content_type)
        except BlobStoreUnavailable as exc:
            raise ServiceUnavailable(retry_after=exc.retry_after) from exc
        record: dict[str, Any] = {"id": str(attachment_id), "filename": filename, "size": size,
                                  "content_type": kind.content_type}
        for optional in ("description", "title"):
            if entry.get(optional):
                record[optional] = entry[optional]
        if kind.is_image:
            record.update(width=kind.width, height=kind.height)
        return record

    def _require_store(self) -> None:
        if self.blobs is None:
            raise RuntimeError("no blob store configured")

    def delete(self, channel_id: int, records: Iterable[dict[str, Any]]) -> None:
        """Delete the records' blobs; a failure is logged and leaves orphans (the records are already gone)."""
        keys = [blob_key(channel_id, int(record["id"])) for record in records]
        if not keys or self.blobs is None:
            return
        try:
            self.blobs.delete(keys)
        except BlobStoreUnavailable as exc:
            log.warning("could not delete %d attachment blobs of channel %s, left as orphans: %s",
                        len(keys), channel_id, exc)
