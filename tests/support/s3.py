"""S3 for tests: moto's server mode (a real HTTP endpoint in a process of its own, started and stopped by PID),
or a real bucket named by ``TEST_S3_URL``.

``TEST_S3_URL`` is ``s3://BUCKET`` (AWS, credentials from boto3's usual chain) or
``http(s)://ACCESS_KEY:SECRET_KEY@HOST:PORT/BUCKET`` (MinIO, Ceph or any S3-compatible endpoint). Tests write
under a unique prefix and delete what they wrote.
"""
from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tests.support.server import free_port, stop

MOTO_SERVER = Path(sys.executable).parent / "moto_server"


@dataclass(frozen=True)
class S3Target:
    bucket: str
    endpoint_url: str | None
    region: str = "us-east-1"


def real_bucket() -> S3Target | None:
    """The bucket of TEST_S3_URL, with its credentials put in the environment; None when it is unset."""
    raw = os.environ.get("TEST_S3_URL")
    if not raw:
        return None
    url = urlsplit(raw)
    if url.scheme == "s3":
        return S3Target(bucket=url.netloc, endpoint_url=None, region=os.environ.get("AWS_REGION", "us-east-1"))
    if url.username:
        os.environ["AWS_ACCESS_KEY_ID"] = unquote(url.username)
        os.environ["AWS_SECRET_ACCESS_KEY"] = unquote(url.password or "")
    port = f":{url.port}" if url.port else ""
    return S3Target(bucket=url.path.strip("/"), endpoint_url=f"{url.scheme}://{url.hostname}{port}",
                    region=os.environ.get("AWS_REGION", "us-east-1"))


def unique_prefix() -> str:
    return f"chatstore-test-{os.getpid()}-{secrets.token_hex(4)}/"


@contextmanager
def moto_server(directory: Path) -> Iterator[S3Target]:
    """moto's S3 in server mode on a free port, with one bucket; stopped by its PID afterwards."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    port = free_port()
    log_path = directory / f"moto-{port}.log"
    log = open(log_path, "wb")  # noqa: SIM115  (closed below)
    process = subprocess.Popen([str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                               stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start: {log_path.read_text()}") from None
                time.sleep(0.1)
        target = S3Target(bucket="chatstore-test", endpoint_url=f"http://127.0.0.1:{port}")
        import boto3

        boto3.client("s3", endpoint_url=target.endpoint_url, region_name=target.region).create_bucket(
            Bucket=target.bucket)
        yield target
    finally:
        stop(process, 10)
        log.close()
