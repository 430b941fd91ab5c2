"""Open-loop load: requests offered at a fixed rate whatever the server does, latency from when each was due.

wrk is closed-loop: each connection sends its next request only when the last one is answered, so a server that
stalls is sent less, and the requests that would have been due during the stall never count (coordinated
omission). Debian's h2load offers a fixed rate of new connections only (its --rps is not in the packaged
version) and wrk2 is not packaged, so this module schedules the requests itself, as wrk2 does: request n is due
at ``start + n / rate``; it is sent on the first idle keep-alive connection at or after that instant, and its
latency runs from when it was due to when its answer was read. A stalled server therefore shows in every
request due during the stall, including those still waiting for a connection. The generator's own lateness
(it shares the machine) counts against the service too: the figures are an upper bound.
"""
from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

#: A run that falls this many times its length behind (the server cannot keep up) stops offering; the requests
#: never sent count as offered, not answered.
MAX_OVERRUN = 3.0


@dataclass(frozen=True)
class OpenLoopResult:
    rate: float
    seconds: float
    offered: int
    answered: int
    errors: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float

    def as_dict(self) -> dict:
        return {"offered_per_second": round(self.rate, 1), "seconds": round(self.seconds, 2),
                "offered": self.offered, "answered": self.answered, "errors": self.errors,
                "p50_ms": round(self.p50_ms, 2), "p99_ms": round(self.p99_ms, 2), "p999_ms": round(self.p999_ms, 2),
                "max_ms": round(self.max_ms, 2)}


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def run_open_loop(host: str, port: int, request: Callable[[random.Random], bytes], *, rate: float, seconds: float,
                  connections: int = 64) -> OpenLoopResult:
    """Offer ``rate`` requests per second for ``seconds`` over up to ``connections`` keep-alive connections;
    ``request(rng)`` builds each request's bytes (HTTP/1.1, keep-alive)."""
    return asyncio.run(_run(host, port, request, rate, seconds, connections))


async def _run(host, port, request, rate, seconds, connections) -> OpenLoopResult:
    rng = random.Random(17)
    idle: asyncio.Queue = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(None)  # a slot; its connection is opened on first use
    latencies: list[float] = []
    errors = 0
    total = int(rate * seconds)
    start = time.monotonic() + 0.1
    pending: set[asyncio.Task] = set()

    async def one(due: float, connection) -> None:
        nonlocal errors
        try:
            if connection is None:
                connection = await asyncio.open_connection(host, port)
            reader, writer = connection
            writer.write(request(rng))
            await writer.drain()
            status = await _read_response(reader)
            latencies.append((time.monotonic() - due) * 1000)
            if not 200 <= status < 300:
                errors += 1
            idle.put_nowait(connection)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            idle.put_nowait(None)

    for n in range(total):
        due = start + n / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        # No idle connection: the request waits for one, its latency still counted from when it was due.
        connection = await idle.get()
        if time.monotonic() > start + MAX_OVERRUN * seconds:
            break
        task = asyncio.create_task(one(due, connection))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.wait(pending, timeout=60)
    while not idle.empty():
        connection = idle.get_nowait()
        if connection is not None:
            connection[1].close()
    elapsed = time.monotonic() - start
    latencies.sort()
    return OpenLoopResult(rate=rate, seconds=elapsed, offered=total, answered=len(latencies), errors=errors,
                          p50_ms=percentile(latencies, 0.5), p99_ms=percentile(latencies, 0.99),
                          p999_ms=percentile(latencies, 0.999), max_ms=latencies[-1] if latencies else 0.0)


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


def get_request(host: str, paths: list[str], tokens: list[str]) -> Callable[[random.Random], bytes]:
    def build(rng: random.Random) -> bytes:
        return (f"GET {rng.choice(paths)} HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bot {rng.choice(tokens)}\r\n\r\n").encode()
    return build


def post_request(host: str, paths: list[str], tokens: list[str]) -> Callable[[random.Random], bytes]:
    sent = 0

    def build(rng: random.Random) -> bytes:
        nonlocal sent
        sent += 1
        body = (f'{{"content": "open-loop message {sent}, about as long as a chat line, sent at a fixed rate"}}'
                .encode())
        return (f"POST {rng.choice(paths)} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bot {rng.choice(tokens)}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    return build
