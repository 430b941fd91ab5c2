"""The blob store contract (app/blobs/base.py), on every backend."""
from __future__ import annotations

import io
import os

import pytest

from app.blobs.base import CHUNK_SIZE, BlobInfo, BlobNotFound, BlobStoreUnavailable


def _bytes(size: int) -> bytes:
    return os.urandom(size)


def test_a_blob_round_trips_with_its_size_and_type(blobs):
    data = _bytes(3 * CHUNK_SIZE + 17)
    assert blobs.put("1/2", io.BytesIO(data), "image/png") == len(data)
    assert blobs.stat("1/2") == BlobInfo(size=len(data), content_type="image/png")
    assert b"".join(blobs.read("1/2")) == data


def test_read_streams_in_chunks(blobs):
    data = _bytes(3 * CHUNK_SIZE)
    blobs.put("1/2", io.BytesIO(data), "application/octet-stream")
    chunks = list(blobs.read("1/2"))
    assert len(chunks) >= 3 and max(map(len, chunks)) <= CHUNK_SIZE


def test_put_stores_from_the_current_position(blobs):
    source = io.BytesIO(b"skipped|kept")
    source.seek(len(b"skipped|"))
    assert blobs.put("1/2", source, "text/plain") == 4
    assert b"".join(blobs.read("1/2")) == b"kept"


@pytest.mark.parametrize(("start", "stop"), [(0, 1), (5, 10), (0, None), (10, None), (CHUNK_SIZE - 1, CHUNK_SIZE + 2),
                                             (99, 100), (100, None), (40, 40)])
def test_ranges(blobs, start, stop):
    data = _bytes(CHUNK_SIZE + 100) if stop and stop > 100 else _bytes(100)
    blobs.put("1/r", io.BytesIO(data), "application/octet-stream")
    assert b"".join(blobs.read("1/r", start, stop)) == data[start:stop]


def test_an_empty_blob(blobs):
    assert blobs.put("1/empty", io.BytesIO(b""), "text/plain") == 0
    assert blobs.stat("1/empty") == BlobInfo(size=0, content_type="text/plain")
    assert b"".join(blobs.read("1/empty")) == b""


def test_writing_a_key_again_replaces_the_blob(blobs):
    blobs.put("1/2", io.BytesIO(b"first version, longer"), "text/plain")
    blobs.put("1/2", io.BytesIO(b"second"), "image/gif")
    assert blobs.stat("1/2") == BlobInfo(size=6, content_type="image/gif")
    assert b"".join(blobs.read("1/2")) == b"second"


def test_missing_blobs(blobs):
    assert blobs.stat("9/9") is None
    with pytest.raises(BlobNotFound):
        blobs.read("9/9")
    with pytest.raises(BlobNotFound):
        blobs.read("9/9", 0, 0)


def test_delete_is_idempotent_and_leaves_others(blobs):
    for key in ("1/a", "1/b", "2/a"):
        blobs.put(key, io.BytesIO(key.encode()), "text/plain")
    blobs.delete(["1/a", "2/a", "3/missing"])
    blobs.delete(["1/a"])
    assert blobs.stat("1/a") is None and blobs.stat("2/a") is None
    assert b"".join(blobs.read("1/b")) == b"1/b"
    blobs.delete([])


def test_delete_under_deletes_one_prefix(blobs):
    for key in ("7/a", "7/b", "70/a", "8/a"):
        blobs.put(key, io.BytesIO(key.encode()), "text/plain")
    blobs.delete_under("7")
    blobs.delete_under("9")
    assert [blobs.stat(key) is None for key in ("7/a", "7/b", "70/a", "8/a")] == [True, True, False, False]


@pytest.mark.parametrize("key", ["../escape", "/absolute", "a//b", "a/./b", "spaces here", "a/..", ""])
def test_keys_outside_the_grammar_are_refused(blobs, key):
    with pytest.raises(ValueError):
        blobs.put(key, io.BytesIO(b"x"), "text/plain")
    with pytest.raises(ValueError):
        blobs.stat(key)


def test_a_failed_put_leaves_no_blob(blobs):
    class Failing(io.BytesIO):
        def read(self, size=-1):
            if self.tell() >= CHUNK_SIZE:
                raise OSError("source failed midway")
            return super().read(size)

    with pytest.raises(OSError):
        blobs.put("1/partial", Failing(_bytes(3 * CHUNK_SIZE)), "text/plain")
    assert blobs.stat("1/partial") is None


def test_an_unreachable_service_is_unavailable(unreachable_blobs):
    with pytest.raises(BlobStoreUnavailable):
        unreachable_blobs.stat("1/2")
    with pytest.raises(BlobStoreUnavailable):
        unreachable_blobs.put("1/2", io.BytesIO(b"x"), "text/plain")
    with pytest.raises(BlobStoreUnavailable):
        unreachable_blobs.read("1/2")
    with pytest.raises(BlobStoreUnavailable):
        unreachable_blobs.delete(["1/2"])
