"""The CDN-style download route of attachments: ``/attachments/{channel_id}/{attachment_id}/{filename}`` with a
signed, expiring query (``ex``, ``is``, ``hm``; app.blobs.links), as Discord serves them from its CDN.

Without a valid signature the answer is 404, the same as for a file that does not exist, so links cannot be
enumerated. Served with the stored content type, ``Content-Length``, single byte ranges (206, or 416 past the
end), a cache lifetime up to the link's expiry, and headers that keep a browser from running what it fetched.
"""
from __future__ import annotations

from flask import Blueprint, Response, request

from app.api import resources
from app.api.json import json_response
from app.blobs.base import BlobNotFound, BlobStoreUnavailable
from app.blobs.links import ATTACHMENTS_PREFIX, AttachmentLinks, attachment_path
from app.errors import ServiceUnavailable
from app.ids import InvalidSnowflake, parse_snowflake
from app.services.attachments import blob_key

cdn = Blueprint("cdn", __name__)
#: Types a browser may show inline; everything else downloads.
_INLINE_PREFIXES = ("image/", "video/", "audio/", "text/plain")


def _gone() -> Response:
    return json_response({"message": "This content is no longer available.", "code": 0}, 404)


@cdn.route(f"{ATTACHMENTS_PREFIX}/<channel>/<attachment>/<filename>", methods=["GET", "HEAD"])
def download(channel: str, attachment: str, filename: str) -> Response:
    try:
        channel_id, attachment_id = parse_snowflake(channel), parse_snowflake(attachment)
    except InvalidSnowflake:
        return _gone()
    res = resources()
    links = AttachmentLinks(lambda: res.attachment_signing_key, res.settings.attachment_url_ttl_seconds, lambda: "")
    seconds_left = links.seconds_left(attachment_path(channel_id, attachment_id, filename), request.args)
    if seconds_left is None:
        return _gone()
    blobs = res.blob_store
    key = blob_key(channel_id, attachment_id)
    try:
        info = blobs.stat(key)
        if info is None:
            return _gone()
        start, stop, status = 0, info.size, 200
        if request.range is not None:
            bounds = request.range.range_for_length(info.size)
            if bounds is None:
                return Response(status=416, headers={"Content-Range": f"bytes */{info.size}"})
            (start, stop), status = bounds, 206
        body = blobs.read(key, start, stop) if request.method == "GET" else iter(())
    except BlobNotFound:
        return _gone()
    except BlobStoreUnavailable as exc:
        raise ServiceUnavailable(retry_after=exc.retry_after) from exc
    response = Response(body, status=status, content_type=info.content_type, direct_passthrough=True)
    response.content_length = stop - start
    if status == 206:
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{info.size}"
    inline = info.content_type.startswith(_INLINE_PREFIXES)
    response.headers.update({
        "Accept-Ranges": "bytes",
        "Cache-Control": f"public, max-age={seconds_left}, immutable",
        "ETag": f'"{attachment_id}"',
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    })
    response.headers.set("Content-Disposition", "inline" if inline else "attachment", filename=filename)
    return response
