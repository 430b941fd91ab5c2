"""``multipart/form-data`` requests as Discord takes them: a ``payload_json`` part (or plain form fields) and up to
10 file parts (``files[n]``, as discord.py and discord.js name them), within the limits app.api.bodies set for
the route: the ``MAX_UPLOAD_BYTES`` setting for the whole body of a route that takes files (the route's JSON
limit otherwise, and no file part at all), the route's JSON limit for each other part.

Limits are enforced while the body streams in, so an oversized or overfull request costs little: a
``Content-Length`` over the limit is refused before a byte is read, a chunked body as soon as it passes the limit,
an eleventh file as soon as its headers arrive. File parts stream to anonymous temporary files on disk (werkzeug's
form parser with our stream factory), never whole into memory; they are closed, and so deleted, when the request
ends.
"""
from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from typing import Any, BinaryIO

from flask import g, request
from werkzeug.formparser import FormDataParser

from app.errors import InvalidForm
from app.services.attachments import MAX_FILES, Upload

#: Non-file parts a request may have besides its files (Discord's clients send one, ``payload_json``): each is held
#: in memory, up to the route's JSON limit.
MAX_FIELD_PARTS = 10
_FILE_FIELD = re.compile(r"^files\[(\d{1,2})\]$")


@dataclass
class MultipartBody:
    fields: dict[str, str]
    uploads: list[Upload]


def read_multipart(*, takes_files: bool) -> MultipartBody:
    """The request's multipart body, parsed once per request (later calls return the same). The body's length is
    held to ``request.max_content_length`` by the request's stream (app.api.bodies), as it arrives."""
    if "multipart_body" in g:
        return g.multipart_body
    opened: list[BinaryIO] = []
    g.multipart_files = opened

    def stream_factory(total_content_length, content_type, filename, content_length=None) -> BinaryIO:
        if not takes_files:
            raise InvalidForm.field("files", "FILES_NOT_ALLOWED", "This route takes no files.")
        if len(opened) >= MAX_FILES:
            raise InvalidForm.field("files", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_FILES} or fewer in length.")
        file = tempfile.TemporaryFile()  # noqa: SIM115  (closed at the request's teardown: close_uploads)
        opened.append(file)
        return file

    parser = FormDataParser(stream_factory=stream_factory, max_form_memory_size=request.max_form_memory_size,
                            max_form_parts=MAX_FILES + MAX_FIELD_PARTS, silent=False)
    try:
        _, form, files = parser.parse(request.stream, request.mimetype, request.content_length,
                                      request.mimetype_params)
    except ValueError:
        raise InvalidForm(errors={"_errors": [{
            "code": "MULTIPART_INVALID", "message": "The multipart body could not be parsed."}]}) from None
    uploads = []
    for position, (name, storage) in enumerate(files.items(multi=True)):
        match = _FILE_FIELD.match(name)
        index = int(match.group(1)) if match else position
        stream = storage.stream
        size = stream.seek(0, 2)
        stream.seek(0)
        uploads.append(Upload(index=index, filename=storage.filename or name, file=stream, size=size))
    if len({upload.index for upload in uploads}) != len(uploads):
        raise InvalidForm.field("files", "BASE_TYPE_UNIQUE", "Each files[n] part may appear once.")
    g.multipart_body = MultipartBody(fields=form.to_dict(), uploads=uploads)
    return g.multipart_body


def uploads() -> list[Upload]:
    """The files of the request's multipart body; none for other bodies."""
    body = g.get("multipart_body")
    return body.uploads if body is not None else []


def close_uploads(_exc: Any = None) -> None:
    """Close (and so delete) the request's temporary files; registered as a teardown."""
    for file in g.pop("multipart_files", ()):
        file.close()
