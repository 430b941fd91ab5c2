"""Signed, expiring attachment links in Discord's form: ``/attachments/{channel}/{attachment}/{filename}`` with
``ex`` (expiry), ``is`` (issue time), both hex Unix seconds, and ``hm``, an HMAC-SHA256 of the path and both
times. Only a valid ``hm`` before ``ex`` grants access: ids alone (a leaked channel id, enumerated snowflakes)
open nothing, and a link stops working after ATTACHMENT_URL_TTL_SECONDS.
"""
from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from urllib.parse import quote

ATTACHMENTS_PREFIX = "/attachments"


def attachment_path(channel_id: int, attachment_id: int, filename: str) -> str:
    return f"{ATTACHMENTS_PREFIX}/{channel_id}/{attachment_id}/{quote(filename, safe='')}"


class AttachmentLinks:
    """Signs links under a base URL and checks the signatures of requested ones. ``key`` and ``base_url`` give the
    signing key and the base URL when first needed, so that rendering messages without files never reads (or
    creates) the key, nor works out a request's URL (werkzeug's ``host_url`` is a measurable share of a kept page's
    cost)."""

    def __init__(self, key: Callable[[], bytes], ttl_seconds: int, base_url: Callable[[], str],
                 clock: Callable[[], float] | None = None):
        self._key_source = key
        self._key: bytes | None = None
        self._base_url_source = base_url
        self._base_url: str | None = None
        self.ttl_seconds = ttl_seconds
        self.clock = clock or time.time

    def _signature(self, path: str, expires: str, issued: str) -> str:
        if self._key is None:
            self._key = self._key_source()
        return hmac.new(self._key, f"{path}\n{expires}\n{issued}".encode(), hashlib.sha256).hexdigest()

    def url(self, channel_id: int, attachment_id: int, filename: str) -> str:
        if self._base_url is None:
            self._base_url = self._base_url_source().rstrip("/")
        path = attachment_path(channel_id, attachment_id, filename)
        issued = int(self.clock())
        expires, issued_hex = format(issued + self.ttl_seconds, "x"), format(issued, "x")
        return (f"{self._base_url}{path}?ex={expires}&is={issued_hex}"
                f"&hm={self._signature(path, expires, issued_hex)}&")

    def seconds_left(self, path: str, query: Mapping[str, str]) -> int | None:
        """Seconds until a requested link expires, or None when its signature is wrong or it has expired.
        ``path`` is the request's path as sent (percent-encoded), as :meth:`url` signed it."""
        expires, issued, signature = query.get("ex", ""), query.get("is", ""), query.get("hm", "")
        if not (expires and issued and signature) or len(expires) > 16 or len(issued) > 16:
            return None
        if not hmac.compare_digest(self._signature(path, expires, issued), signature):
            return None
        try:
            left = int(expires, 16) - int(self.clock())
        except ValueError:
            return None
        return left if left > 0 else None
