"""What idle keep-alive connections cost a worker, and whether they are still open when clients reuse them.

    .venv/bin/python -m bench.idle_connections [--connections 1000] [--idle 20]

One gunicorn worker on a migrated SQLite database; ``--connections`` clients each send one request and keep the
connection. Prints the worker's resident memory before, with every connection open and idle, and the cost per
connection; then, after ``--idle`` seconds (longer than aiohttp's 15 s reuse), how many connections still answer a
second request (KEEPALIVE_TIMEOUT keeps them 75 s).
"""
from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
from pathlib import Path

from bench.probes import resident_megabytes
from bench.server import serve, wait_for_workers
from tests.security.seed import seed, sqlite_settings

REQUEST = b"GET /api/v10/users/@me HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bot %s\r\n\r\n"


async def _answer(reader) -> bool:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    await reader.readexactly(length)
    return head.startswith(b"HTTP/1.1 200")


async def _run(host: str, port: int, count: int, request: bytes, idle: float, worker: int) -> dict:
    async def connect():
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(request)
        await writer.drain()
        await _answer(reader)
        return reader, writer

    before = resident_megabytes(worker)
    connections = [c for c in await asyncio.gather(*(connect() for _ in range(count)), return_exceptions=True)
                   if isinstance(c, tuple)]
    await asyncio.sleep(1)
    during = resident_megabytes(worker)
    await asyncio.sleep(idle)

    async def reuse(reader, writer) -> bool:
        try:
            writer.write(request)
            await writer.drain()
            return await _answer(reader)
        except (OSError, asyncio.IncompleteReadError):
            return False

    reused = await asyncio.gather(*(reuse(*c) for c in connections))
    for _reader, writer in connections:
        writer.close()
    return {"opened": len(connections), "rss_before_mb": round(before, 1), "rss_idle_mb": round(during, 1),
            "kb_per_connection": round((during - before) * 1024 / max(len(connections), 1), 1),
            f"answered_after_{idle:g}s_idle": sum(reused)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--idle", type=float, default=20.0)
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, args.connections + 256)), hard))
    with tempfile.TemporaryDirectory(prefix="idle-") as directory, sqlite_settings(Path(directory)) as settings:
        world = seed(settings)
        environment = {"DATABASE_URL": settings.database_url, "WEB_WORKERS": "1", "RATE_LIMIT_ENABLED": "false",
                       "WORKER_CONNECTIONS": str(args.connections + 10)}
        with serve("wsgi:application", environment, Path(directory) / "server.log",
                   ready_path="/api/v10/users/@me") as server:
            [worker] = wait_for_workers(server, 1)
            request = REQUEST % world.owner.token.encode()
            print(asyncio.run(_run(server.host, server.port, args.connections, request, args.idle, worker)))


if __name__ == "__main__":
    main()
