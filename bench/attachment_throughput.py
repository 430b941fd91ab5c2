"""Upload and download throughput of a file through the service against writing and reading the same bytes to the
same storage directly, in the same run; not part of CI.

    .venv/bin/python -m bench.attachment_throughput [--size-mb 5] [--rounds 20]

One gunicorn worker (gevent) on SQLite with the filesystem blob store. Each round, interleaved so that drift on a
shared machine hits both alike: POST the file as discord.py sends it (multipart, payload_json + files[0]) and
GET it back from its signed url, on one keep-alive connection; then the baseline, ``FilesystemBlobStore.put`` and
``read`` of the same bytes in this process, into a directory on the same filesystem (the same atomic write with
fsync the service does). Printed: MB/s of each and the ratio service / direct, and the worker's CPU milliseconds
per request (from /proc). Results go to bench/results/<timestamp>-attachments.json.
"""
from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import statistics
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from app import create_app
from app.blobs.filesystem import FilesystemBlobStore
from bench.paths import RESULTS_DIR
from bench.probes import workers_cpu_seconds
from bench.server import serve, wait_for_workers
from tests.support.databases import migrated_database
from tests.support.factories import Factory

BOUNDARY = "benchboundary"
MB = 1_000_000


def multipart(data: bytes) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"payload_json\"\r\n\r\n"
            f"{json.dumps({'content': 'bench'})}\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; "
            f"name=\"files[0]\"; filename=\"bench.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            ).encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def measure(args) -> dict:
    data = os.urandom(args.size_mb * MB)
    body = multipart(data)
    with tempfile.TemporaryDirectory(prefix="bench-attachments-") as directory, \
            migrated_database("sqlite", Path(directory)) as settings:
        app = create_app(settings)
        try:
            make = Factory(app.extensions["chatstore"])
            bot = make.actor("bench")
            _, channel_id = make.guild(bot)
        finally:
            app.extensions["chatstore"].close()
        direct = FilesystemBlobStore(Path(directory) / "direct")
        environment = {"DATABASE_URL": settings.database_url, "WEB_WORKERS": "1", "RATE_LIMIT_ENABLED": "false",
                       "BLOB_DIRECTORY": str(Path(directory) / "served"), "LOG_LEVEL": "WARNING"}
        log_path = RESULTS_DIR / f"{args.stamp}-attachments-servers.log"
        with serve("wsgi:application", environment, log_path, ready_path="/api/v10/openapi.json") as server:
            wait_for_workers(server, 1)
            connection = http.client.HTTPConnection(server.host, server.port, timeout=60)
            headers = {"Authorization": f"Bot {bot.token}",
                       "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
            times = {"upload": [], "download": [], "direct_put": [], "direct_read": []}
            cpu = {"upload": 0.0, "download": 0.0}
            for _ in range(args.rounds):
                before = workers_cpu_seconds(server.process.pid)
                started = time.perf_counter()
                connection.request("POST", f"/api/v10/channels/{channel_id}/messages", body=body, headers=headers)
                response = connection.getresponse()
                message = json.loads(response.read())
                times["upload"].append(time.perf_counter() - started)
                cpu["upload"] += workers_cpu_seconds(server.process.pid) - before
                assert response.status == 200, message
                url = urlsplit(message["attachments"][0]["url"])

                before = workers_cpu_seconds(server.process.pid)
                started = time.perf_counter()
                connection.request("GET", f"{url.path}?{url.query}")
                response = connection.getresponse()
                received = response.read()
                times["download"].append(time.perf_counter() - started)
                cpu["download"] += workers_cpu_seconds(server.process.pid) - before
                assert response.status == 200 and received == data

                key = f"{channel_id}/{uuid.uuid4().int % 10**18}"
                started = time.perf_counter()
                direct.put(key, io.BytesIO(data), "application/octet-stream")
                times["direct_put"].append(time.perf_counter() - started)
                started = time.perf_counter()
                assert b"".join(direct.read(key)) == data
                times["direct_read"].append(time.perf_counter() - started)
            connection.close()
    size_mb = len(data) / MB
    rates = {name: size_mb / statistics.median(samples) for name, samples in times.items()}
    return {"size_mb": size_mb, "rounds": args.rounds, "mb_per_s": rates,
            "upload_vs_direct": rates["upload"] / rates["direct_put"],
            "download_vs_direct": rates["download"] / rates["direct_read"],
            "worker_cpu_ms_per_request": {name: 1000 * seconds / args.rounds for name, seconds in cpu.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    args.stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    result = measure(args)
    rates, cpu = result["mb_per_s"], result["worker_cpu_ms_per_request"]
    print(f"{result['size_mb']:.0f} MB file, {args.rounds} rounds, medians:")
    print(f"  upload   {rates['upload']:8.1f} MB/s through the service, {rates['direct_put']:8.1f} MB/s direct "
          f"-> {result['upload_vs_direct']:.2f} x; worker CPU {cpu['upload']:.1f} ms per request")
    print(f"  download {rates['download']:8.1f} MB/s through the service, {rates['direct_read']:8.1f} MB/s direct "
          f"-> {result['download_vs_direct']:.2f} x; worker CPU {cpu['download']:.1f} ms per request")
    (RESULTS_DIR / f"{args.stamp}-attachments.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
