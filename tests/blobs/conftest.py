"""The blob store conformance suite runs every test once per backend: the filesystem, S3 through moto's server
mode, and a real bucket when TEST_S3_URL names one (skipped, saying so, otherwise)."""
from __future__ import annotations

import pytest

from app.blobs.filesystem import FilesystemBlobStore
from app.blobs.s3 import S3BlobStore
from tests.support.s3 import moto_server, real_bucket, unique_prefix

BLOB_BACKENDS = ["filesystem", "s3-moto", "s3-real"]


@pytest.fixture(scope="session")
def moto(tmp_path_factory):
    with moto_server(tmp_path_factory.mktemp("moto")) as target:
        yield target


def _s3_store(target, prefix: str) -> S3BlobStore:
    return S3BlobStore(target.bucket, endpoint_url=target.endpoint_url, region=target.region, prefix=prefix)


@pytest.fixture(params=BLOB_BACKENDS)
def blobs(request, tmp_path):
    if request.param == "filesystem":
        yield FilesystemBlobStore(tmp_path / "blobs")
        return
    if request.param == "s3-moto":
        target = request.getfixturevalue("moto")
    else:
        target = real_bucket()
        if target is None:
            pytest.skip("TEST_S3_URL is not set: no real bucket to run the blob suite on")
    store = _s3_store(target, unique_prefix())
    written: list[str] = []
    put = store.put

    def recording_put(key, source, content_type):
        size = put(key, source, content_type)
        written.append(key)
        return size

    store.put = recording_put
    try:
        yield store
    finally:
        store.put = put
        store.delete(written)
        store.close()


@pytest.fixture
def unreachable_blobs(request, tmp_path):
    """Per backend, a store whose service does not answer (S3 on a port nobody listens on)."""
    from tests.support.server import free_port

    return S3BlobStore("nobody", endpoint_url=f"http://127.0.0.1:{free_port()}", prefix="x/",
                       connect_timeout=1, read_timeout=1)
