"""Blobs in an S3-compatible object store through boto3 (BLOB_STORE=s3): AWS S3, MinIO, Ceph RGW.

One client per process, made on first use after the fork (boto3 clients are not fork-safe); its sockets are
gevent's once the worker has patched, so requests wait cooperatively. A put is one PutObject, which S3 makes
visible atomically; the content type is the object's own ``Content-Type``.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from app.blobs.base import CHUNK_SIZE, BlobInfo, BlobNotFound, BlobStore, BlobStoreUnavailable, check_key

#: DeleteObjects takes at most this many keys per call.
_DELETE_BATCH = 1000
_MISSING = {"404", "NoSuchKey", "NotFound"}


class S3BlobStore(BlobStore):
    backend = "s3"

    def __init__(self, bucket: str, *, endpoint_url: str | None = None, region: str = "us-east-1",
                 prefix: str = "", connect_timeout: float = 5.0, read_timeout: float = 30.0):
        self.bucket = bucket
        self.endpoint_url = endpoint_url or None
        self.region = region
        self.prefix = prefix
        self._timeouts = (connect_timeout, read_timeout)
        self._client = None
        self._pid = os.getpid()

    @property
    def client(self):
        if self._client is None or self._pid != os.getpid():
            import boto3
            from botocore.config import Config

            connect, read = self._timeouts
            self._client = boto3.client(
                "s3", endpoint_url=self.endpoint_url, region_name=self.region,
                config=Config(connect_timeout=connect, read_timeout=read, retries={"max_attempts": 2},
                              # Path-style addressing works with every S3-compatible service; AWS accepts it too.
                              s3={"addressing_style": "path"}))
            self._pid = os.getpid()
        return self._client

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _errors(self):
        from botocore.exceptions import BotoCoreError, ClientError
        return BotoCoreError, ClientError

    def _unavailable(self, exc: Exception) -> BlobStoreUnavailable:
        return BlobStoreUnavailable(f"S3 request failed: {exc}")

    def put(self, key: str, source: BinaryIO, content_type: str) -> int:
        start = source.tell()
        size = source.seek(0, os.SEEK_END) - start
        source.seek(start)
        core, client_error = self._errors()
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=source, ContentLength=size,
                                   ContentType=content_type)
        except client_error as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500) < 500:
                raise
            raise self._unavailable(exc) from exc
        except core as exc:
            raise self._unavailable(exc) from exc
        return size

    def stat(self, key: str) -> BlobInfo | None:
        core, client_error = self._errors()
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except client_error as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise self._unavailable(exc) from exc
        except core as exc:
            raise self._unavailable(exc) from exc
        return BlobInfo(size=head["ContentLength"], content_type=head.get("ContentType", "application/octet-stream"))

    def read(self, key: str, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
        if stop is not None and stop <= start:
            if self.stat(key) is None:
                raise BlobNotFound(key)
            return iter(())
        core, client_error = self._errors()
        byte_range = f"bytes={start}-" + ("" if stop is None else str(stop - 1))
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key), Range=byte_range)["Body"]
        except client_error as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in _MISSING:
                raise BlobNotFound(key) from None
            if code == "InvalidRange":  # start at or past the end of the blob
                return iter(())
            raise self._unavailable(exc) from exc
        except core as exc:
            raise self._unavailable(exc) from exc
        return self._chunks(body)

    @staticmethod
    def _chunks(body) -> Iterator[bytes]:
        with body:
            yield from body.iter_chunks(CHUNK_SIZE)

    def delete(self, keys: Iterable[str]) -> None:
        objects = [{"Key": self._key(key)} for key in keys]
        core, client_error = self._errors()
        for first in range(0, len(objects), _DELETE_BATCH):
            try:
                self.client.delete_objects(Bucket=self.bucket,
                                           Delete={"Objects": objects[first:first + _DELETE_BATCH], "Quiet": True})
            except (core, client_error) as exc:
                raise self._unavailable(exc) from exc

    def delete_under(self, prefix: str) -> None:
        core, client_error = self._errors()
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(prefix) + "/")
            for page in pages:
                keys = [{"Key": item["Key"]} for item in page.get("Contents", ())]
                if keys:
                    self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
        except (core, client_error) as exc:
            raise self._unavailable(exc) from exc

    def ping(self) -> None:
        core, client_error = self._errors()
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (core, client_error) as exc:
            raise self._unavailable(exc) from exc

    def close(self) -> None:
        if self._client is not None and self._pid == os.getpid():
            self._client.close()
        self._client = None
