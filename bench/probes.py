"""Measurements beside the load: store calls from the service's /metrics, the workers' CPU time, worker memory
under idle keep-alive connections, and the SQL statements one page of a sparse channel costs."""
from __future__ import annotations

import asyncio
import http.client
import resource
import time
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event
from sqlalchemy.engine import make_url

from bench.server import child_pids

STORE_CALLS = "chatstore_message_store_calls_total"
COALESCED_READS = "chatstore_coalesced_reads_total"
IN_PROGRESS = "chatstore_http_requests_in_progress"
HTTP_REQUESTS = "chatstore_http_requests_total"


@dataclass(frozen=True)
class StoreCallCount:
    #: requests the service answered (the scrapes included, one each)
    requests: float
    #: calls the service made to the message store interface
    asked: float
    #: of those, answered by joining an identical read in flight (they never reached the backend)
    coalesced: float

    @property
    def reached_backend(self) -> float:
        return self.asked - self.coalesced

    def per_request(self, calls: float) -> float:
        return calls / self.requests if self.requests else 0.0

    def __sub__(self, earlier: StoreCallCount) -> StoreCallCount:
        return StoreCallCount(self.requests - earlier.requests, self.asked - earlier.asked,
                              self.coalesced - earlier.coalesced)


def _metric_totals(host: str, port: int) -> dict[str, float] | None:
    """Samples summed by name over labels and workers, or None when there is no /metrics."""
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
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def store_calls(host: str, port: int) -> StoreCallCount | None:
    """The service's store call counters summed over its workers, or None when it exposes no /metrics."""
    totals = _metric_totals(host, port)
    if totals is None:
        return None
    return StoreCallCount(requests=totals.get(HTTP_REQUESTS, 0.0), asked=totals.get(STORE_CALLS, 0.0),
                          coalesced=totals.get(COALESCED_READS, 0.0))


def wait_until_idle(host: str, port: int, timeout: float = 120.0) -> None:
    """Wait until the service answers nothing but this scrape, so that no leftover request of an earlier load
    is counted in the next one."""
    deadline = time.monotonic() + timeout
    while True:
        totals = _metric_totals(host, port)
        if totals is None or totals.get(IN_PROGRESS, 0.0) <= 1 or time.monotonic() > deadline:
            return
        time.sleep(0.2)


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
    """How many SQL queries ``read()`` sends through ``engine`` (transaction control, such as SQLite's
    BEGIN IMMEDIATE, is not a query)."""
    statements = 0

    def count(_connection, _cursor, statement, *_args):
        nonlocal statements
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            statements += 1

    event.listen(engine, "before_cursor_execute", count)
    try:
        read()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return statements


def process_cpu_seconds(pid: int) -> float:
    """The CPU time of process ``pid``, all its threads, from the scheduler's own count (``/proc/<pid>/task/*/
    schedstat``, nanoseconds on the CPU). Not ``/proc/<pid>/stat``'s utime and stime: on this machine's kernel
    (tick accounting, idle ticks stopped) those come from sampling at the timer tick, and a process that runs in
    bursts shorter than a tick between sleeps, as a database backend answering one quick statement at a time
    does, is charged almost nothing: 0 ticks against 4 ms measured here for each backend of a page load.
    Raises OSError when the process has gone."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except OSError:
            continue  # the thread exited while we looked
    return total / 1e9


def workers_cpu_seconds(master_pid: int) -> float:
    """CPU time of the master's children (the workers, all their threads included)."""
    total = 0.0
    for pid in child_pids(master_pid):
        try:
            total += process_cpu_seconds(pid)
        except OSError:
            continue  # exited while we looked
    return total


def database_backends_cpu(database: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend process serving ``database`` on this host (its process
    title names the database: ``postgres: <cluster>: <user> <database> <client> <state>``). The server's shared
    processes (WAL writer, checkpointer) are left out: on a shared server they work for every database."""
    found = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").split()
            if not title or title[0] != "postgres:" or database not in title:
                continue
            found[int(proc.name)] = process_cpu_seconds(int(proc.name))
        except OSError:
            continue  # exited while we looked, or not ours to read
    return found


def database_cpu_seconds_since(before: dict[int, float], database: str) -> float:
    """The CPU the database's backends spent since ``before`` (:func:`database_backends_cpu`); a backend that
    started since counts whole, one that exited since is lost (the service's pool keeps its connections, so
    few do)."""
    after = database_backends_cpu(database)
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


class LockWaitSampler:
    """Samples, every ``interval`` seconds while it runs (a thread), how many of ``database``'s sessions wait on a
    lock (``pg_stat_activity.wait_event_type = 'Lock'``): writers queued on one row show up here whatever else
    the machine runs. ``mean`` is the average over the samples."""

    def __init__(self, url: str, interval: float = 0.05):
        import threading

        self._url = url
        self._interval = interval
        self._stop = threading.Event()
        self._samples: list[int] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LockWaitSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psycopg2

        url = make_url(self._url)
        connection = psycopg2.connect(host=url.host, port=url.port or 5432, user=url.username,
                                      password=url.password, dbname=url.database)
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                while not self._stop.wait(self._interval):
                    cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                   "AND wait_event_type = 'Lock'")
                    self._samples.append(cursor.fetchone()[0])
        finally:
            connection.close()

    @property
    def mean(self) -> float:
        return sum(self._samples) / len(self._samples) if self._samples else 0.0
