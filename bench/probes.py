"""Measurements beside the load: store calls from the service's /metrics, worker memory under idle keep-alive
connections, and the SQL statements one page of a sparse channel costs."""
from __future__ import annotations

import asyncio
import http.client
import resource
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event

STORE_CALLS = "chatstore_message_store_calls"
COALESCED_READS = "chatstore_coalesced_reads"


@dataclass(frozen=True)
class StoreCallCount:
    #: calls the service made to the message store interface
    asked: float
    #: of those, answered by joining an identical read in flight (they never reached the backend)
    coalesced: float

    @property
    def reached_backend(self) -> float:
        return self.asked - self.coalesced

    def __sub__(self, earlier: "StoreCallCount") -> "StoreCallCount":
        return StoreCallCount(self.asked - earlier.asked, self.coalesced - earlier.coalesced)


def store_calls(host: str, port: int) -> StoreCallCount | None:
    """The service's store call counters summed over its workers, or None when it exposes no /metrics."""
    # Generous: requests the load generator left behind are still being answered when it stops.
    connection = http.client.HTTPConnection(host, port, timeout=120)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        body = response.read().decode()
    finally:
        connection.close()
    if response.status != 200:
        return None
    totals = {STORE_CALLS: 0.0, COALESCED_READS: 0.0}
    for family in text_string_to_metric_families(body):
        if family.name in totals:
            totals[family.name] += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return StoreCallCount(asked=totals[STORE_CALLS], coalesced=totals[COALESCED_READS])


def resident_megabytes(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def hold_idle_connections(host: str, port: int, count: int, request: bytes, measure):
    """Open ``count`` connections, send ``request`` on each and read its answer, then, with all of them open
    and idle, call ``measure()`` and return what it returns with the number of connections that were answered."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 256), hard))

    async def one():
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        await reader.readexactly(length)
        return writer

    async def run():
        outcomes = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
        writers = [w for w in outcomes if isinstance(w, asyncio.StreamWriter)]
        try:
            return measure(), len(writers)
        finally:
            for writer in writers:
                writer.close()

    return asyncio.run(run())


def statements_per_page(engine, read) -> int:
    """How many SQL statements ``read()`` sends through ``engine``."""
    statements = 0

    def count(*_args):
        nonlocal statements
        statements += 1

    event.listen(engine, "before_cursor_execute", count)
    try:
        read()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return statements
