"""Request bodies: how much a request may send, refused before it costs more than a small constant.

Every route declares the largest JSON body it takes (``json_limit`` of ``app.api.route``): Discord's own limits
on what a body carries (2,000 characters of content, 6,000 of embeds, 100 ids...) put a message's JSON at tens of
KB, so 256 KiB for a message and 64 KiB for anything else refuse nothing a client can mean. The same limit bounds
url-encoded forms and each non-file part of a multipart body (``payload_json``); only a route that takes files
(``accepts_files``) reads a multipart body up to the ``MAX_UPLOAD_BYTES`` setting. Over its limit a body is
refused with 413 40005 whether it declares a ``Content-Length`` or is chunked, and nothing of it reaches a
service.

Within the limit, a body with more separators than ``MAX_JSON_ELEMENTS`` values can need is refused before it is
parsed (counting bytes costs microseconds; building 80,000 objects, tens of milliseconds of a worker's hub), and
the parsed value is walked once, at most ``MAX_JSON_ELEMENTS`` values into it (a message has fewer than 2,000), so
that neither that walk nor validation costs more for a body built of a long array.
"""
from __future__ import annotations

from typing import IO, Any

from flask import Request, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream, get_content_length

from app.errors import InvalidForm, InvalidJSON

DEFAULT_JSON_LIMIT = 64 * 1024
MESSAGE_JSON_LIMIT = 256 * 1024
#: JSON nested deeper is refused: no Discord object nests more than a few levels, and orjson cannot write more
#: than 254 (a stored embed that deep would fail when read back).
MAX_JSON_DEPTH = 32
#: Values in one body (objects, arrays, and what they hold). A message with ten full embeds, 100 mentions of
#: each kind and every component has fewer than 2,000.
MAX_JSON_ELEMENTS = 10_000


class _ExactLimitStream(LimitedStream):
    """werkzeug's stream of at most ``limit`` bytes, which refuses a longer body instead of cutting it short.

    werkzeug's own stream stops reading at the limit when the length is not declared (a chunked body), so the
    body arrives truncated to the limit and a request over it is served as if the client had sent less. At the
    limit this one looks one byte further: if the body goes on, 413.
    """

    def readall(self) -> bytes:
        data = super().readall()
        if self.is_exhausted:
            self.on_exhausted()
        return data

    def on_exhausted(self) -> None:
        if self._limit_is_max and self._stream.read(1):
            raise RequestEntityTooLarge()


class BoundedRequest(Request):
    """Flask's request whose body stream refuses what goes beyond ``max_content_length``, chunked or not."""

    @cached_property
    def stream(self) -> IO[bytes]:
        limit = self.max_content_length
        if limit is None or "wsgi.input_terminated" not in self.environ:
            return super().stream
        declared = get_content_length(self.environ)
        if declared is not None and declared > limit:
            raise RequestEntityTooLarge()
        return _ExactLimitStream(self.environ["wsgi.input"], limit, is_max=True)


def limit_body(json_limit: int, upload_limit: int | None) -> None:
    """Set the current request's limits: call before anything reads the body. ``upload_limit``: the most a
    multipart body with files may hold, None for a route that takes no files."""
    if upload_limit is not None and request.mimetype == "multipart/form-data":
        request.max_content_length = upload_limit
    else:
        request.max_content_length = json_limit
    # A form field (payload_json of a multipart body) is JSON too: app.api.uploads holds each to this.
    request.max_form_memory_size = json_limit


def refuse_before_parsing(raw: bytes | str) -> None:
    """Refuse a JSON text with too many values to be a request, without parsing it. Each value beside another
    follows a comma (values inside one another are bounded by the depth orjson allows); the count errs high (it
    includes commas inside strings) and is let up to twice the limit, since all the text a message may carry is
    8,000 characters."""
    text = raw.encode() if isinstance(raw, str) else raw
    if text.count(b",") > 2 * MAX_JSON_ELEMENTS:
        raise _too_many_values()


def _too_many_values() -> InvalidForm:
    return InvalidForm(errors={"_errors": [{
        "code": "BASE_TYPE_MAX_LENGTH", "message": f"Must be {MAX_JSON_ELEMENTS} or fewer values in all."}]})


def reject_unstorable(data: Any) -> None:
    """Refuse what no backend can keep or no client can mean: more than MAX_JSON_ELEMENTS values (50035),
    nesting beyond MAX_JSON_DEPTH (50109), and NUL in any string (50035), which PostgreSQL text cannot hold, so
    that every backend answers the same."""
    pending = [(data, (), 1)]
    values = 1
    while pending:
        value, path, depth = pending.pop()
        if isinstance(value, str):
            if "\x00" in value:
                raise InvalidForm.field(path, "STRING_TYPE_INVALID_CHARACTERS", "Must not contain NUL characters.")
            continue
        if not isinstance(value, (dict, list)):
            continue
        if depth > MAX_JSON_DEPTH:
            raise InvalidJSON()
        # Counted before its children are visited, so that a long array costs one len().
        values += len(value)
        if values > MAX_JSON_ELEMENTS:
            raise _too_many_values()
        for key, child in (value.items() if isinstance(value, dict) else enumerate(value)):
            if isinstance(key, str) and "\x00" in key:
                raise InvalidForm.field(path, "STRING_TYPE_INVALID_CHARACTERS", "Must not contain NUL characters.")
            pending.append((child, (*path, str(key)), depth + 1))
