"""Soak: the service under steady load at a fraction of its measured maximum, through faults; not part of CI.

    .venv/bin/python -m bench.soak [--duration 600] [--fraction 0.7] [--backend postgres|sqlite] [--workers 2]
                                   [--no-faults]

First measures the maximum throughput of a mixed workload (a quarter writes, the rest history reads, across
several channels) with closed-loop clients, then runs the same mix open-loop at ``fraction`` of it for
``duration`` seconds (10 minutes at most). With PostgreSQL (the default) the bench starts a private cluster of
its own on a free port (never a shared server), and, unless ``--no-faults``, restarts it a third of the way in
and SIGKILLs one gunicorn worker two thirds of the way in (gunicorn starts another). It passes (exit status 0)
only with zero answers other than 2xx, 429 and 503, and zero lost writes: every message acknowledged with a 2xx
is read back at the end, with its content. Requests cut by the killed worker are reported as connection
failures (they got no answer, so no client took them as done). It reports how long the service took to answer
2xx again after each fault and the workers' resident memory at the start and the end. Rate limits are off:
this measures the service, not its limits. Traffic goes to a gunicorn it starts on a loopback port and stops
by PID.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import gevent.pool  # noqa: E402

from bench.fixtures import sample_line  # noqa: E402
from bench.probes import resident_megabytes  # noqa: E402
from bench.server import wait_for_workers  # noqa: E402
from tests.security.seed import seed  # noqa: E402
from tests.security.servers import postgres_server  # noqa: E402
from tests.support.databases import migrated_database  # noqa: E402
from tests.support.server import children_of, gunicorn_server  # noqa: E402

MAX_DURATION = 600.0
CHANNELS = 16
WRITE_SHARE = 0.25
MEASURE_SECONDS = 10.0
MEASURE_CLIENTS = 32
#: Requests in flight at most during the soak: past that the service is falling behind, and more clients would
#: only queue longer, so further requests are counted as not sent.
SOAK_CLIENTS = 64
#: gunicorn closes a keep-alive connection idle for KEEPALIVE_TIMEOUT (75 s); reusing one after that fails.
IDLE_RECONNECT_SECONDS = 60.0
#: Answers that are part of the contract under faults; anything else fails the soak.
EXPECTED_STATUSES = frozenset({429, 503})


@dataclass
class Tally:
    statuses: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    #: (channel id, message id, content) of every write acknowledged with a 2xx.
    acknowledged: list[tuple[int, str, str]] = field(default_factory=list)
    failures: Counter = field(default_factory=Counter)
    #: (when it ended, status) of every write answered, for the recovery times.
    write_answers: list[tuple[float, int]] = field(default_factory=list)


class Client:
    """One keep-alive connection, reopened after any failure and before the server would close it as idle."""

    def __init__(self, host: str, port: int, token: str):
        self.host, self.port = host, port
        self.headers = {"Authorization": f"Bot {token}", "Content-Type": "application/json"}
        self.connection: http.client.HTTPConnection | None = None
        self.used_at = 0.0

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        if self.connection is not None and time.monotonic() - self.used_at > IDLE_RECONNECT_SECONDS:
            self.connection.close()
            self.connection = None
        if self.connection is None:
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            self.connection.request(method, path, json.dumps(body) if body is not None else None, self.headers)
            response = self.connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()
            self.connection = None
            raise
        finally:
            self.used_at = time.monotonic()


def one_request(client: Client, channels: list[int], tally: Tally, serial: int) -> None:
    channel_id = random.choice(channels)
    started = time.monotonic()
    try:
        if random.random() < WRITE_SHARE:
            content = sample_line(serial)
            status, raw = client.request("POST", f"/api/v10/channels/{channel_id}/messages", {"content": content})
            tally.write_answers.append((time.monotonic(), status))
            if 200 <= status < 300:
                tally.acknowledged.append((channel_id, json.loads(raw)["id"], content))
        else:
            status, _raw = client.request("GET", f"/api/v10/channels/{channel_id}/messages?limit=50")
    except (OSError, http.client.HTTPException) as exc:
        tally.failures[type(exc).__name__] += 1
        return
    tally.latencies.append(time.monotonic() - started)
    tally.statuses[status] += 1


def measure_maximum(server, token: str, channels: list[int]) -> float:
    """Requests per second that MEASURE_CLIENTS closed-loop clients get through."""
    tally, serial = Tally(), iter(range(10**9))
    deadline = time.monotonic() + MEASURE_SECONDS

    def loop():
        client = Client(server.host, server.port, token)
        while time.monotonic() < deadline:
            one_request(client, channels, tally, -next(serial) - 1)

    started = time.monotonic()
    gevent.joinall([gevent.spawn(loop) for _ in range(MEASURE_CLIENTS)])
    return sum(tally.statuses.values()) / (time.monotonic() - started)


class Faults:
    """What the soak does to the service on the way: a database restart, then a worker SIGKILLed."""

    def __init__(self, server, database, duration: float):
        self.server, self.database = server, database
        self.schedule = [(duration / 3, self.restart_database), (2 * duration / 3, self.kill_worker)] \
            if database is not None else [(duration / 2, self.kill_worker)]
        self.done: list[dict] = []

    def run(self, started: float) -> None:
        for at, fault in self.schedule:
            gevent.sleep(max(0.0, started + at - time.monotonic()))
            self.done.append(fault())

    def restart_database(self) -> dict:
        began = time.monotonic()
        self.database.stop()
        self.database.start()
        return {"fault": "postgres restart", "began": began, "ended": time.monotonic()}

    def kill_worker(self) -> dict:
        workers = sorted(children_of(self.server.process.pid))
        victim = workers[0]
        began = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        deadline = began + 60
        while time.monotonic() < deadline:
            current = children_of(self.server.process.pid) - {victim}
            if len(current) >= len(workers):
                break
            gevent.sleep(0.1)
        return {"fault": "worker SIGKILL", "pid": victim, "began": began, "ended": time.monotonic()}


def recovery(tally: Tally, fault: dict) -> dict:
    """How long after a fault began until writes were answered 2xx again, and how many were not meanwhile."""
    after = sorted((ended, status) for ended, status in tally.write_answers if ended >= fault["began"])
    not_ok = 0
    for ended, status in after:
        if 200 <= status < 300 and ended >= fault["ended"]:
            return {"fault": fault["fault"], "fault_seconds": round(fault["ended"] - fault["began"], 2),
                    "first_2xx_write_after_seconds": round(ended - fault["began"], 2),
                    "writes_not_2xx_meanwhile": not_ok}
        not_ok += not (200 <= status < 300)
    return {"fault": fault["fault"], "fault_seconds": round(fault["ended"] - fault["began"], 2),
            "first_2xx_write_after_seconds": None, "writes_not_2xx_meanwhile": not_ok}


def soak(server, token: str, channels: list[int], rate: float, duration: float,
         faults: Faults | None) -> tuple[Tally, dict]:
    """Open loop: a request every 1/rate seconds, whatever the answers' latency (up to a pool of clients)."""
    tally = Tally()
    clients = [Client(server.host, server.port, token) for _ in range(SOAK_CLIENTS)]
    idle = list(clients)
    pool = gevent.pool.Pool(len(clients))
    memory_start = _worker_memory(server)
    started = time.monotonic()
    injector = gevent.spawn(faults.run, started) if faults is not None else None
    serial, skipped = 0, 0
    while (now := time.monotonic()) < started + duration:
        due = started + serial / rate
        if due > now:
            gevent.sleep(due - now)
        if not idle:
            skipped += 1  # every client busy: the service is falling behind; counted, not queued without bound
        else:
            client = idle.pop()

            def run(client=client, serial=serial):
                try:
                    one_request(client, channels, tally, serial)
                finally:
                    idle.append(client)

            pool.spawn(run)
        serial += 1
    pool.join(timeout=60)
    if injector is not None:
        injector.join(timeout=60)
    return tally, {"memory": {"start": memory_start, "end": _worker_memory(server)}, "skipped": skipped,
                   "seconds": time.monotonic() - started}


def _worker_memory(server) -> dict[str, float]:
    return {str(pid): round(resident_megabytes(pid), 1) for pid in sorted(children_of(server.process.pid))}


def lost_writes(server, token: str, tally: Tally) -> list[tuple[int, str, str]]:
    """Acknowledged writes that the channel's history does not hold, with the same content."""
    client = Client(server.host, server.port, token)
    stored: dict[str, str] = {}
    for channel_id in {channel for channel, _id, _content in tally.acknowledged}:
        before = None
        while True:
            query = "limit=100" + (f"&before={before}" if before else "")
            status, raw = client.request("GET", f"/api/v10/channels/{channel_id}/messages?{query}")
            if status != 200:
                raise RuntimeError(f"reading back channel {channel_id} answered {status}: {raw[:200]!r}")
            page = json.loads(raw)
            stored.update((m["id"], m["content"]) for m in page)
            if len(page) < 100:
                break
            before = page[-1]["id"]
    return [write for write in tally.acknowledged if stored.get(write[1]) != write[2]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help=f"soak seconds (at most {MAX_DURATION:.0f})")
    parser.add_argument("--fraction", type=float, default=0.7, help="share of the measured maximum to offer")
    parser.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-faults", dest="faults", action="store_false", help="no restart, no SIGKILL")
    args = parser.parse_args(argv)
    duration = min(args.duration, MAX_DURATION)

    with tempfile.TemporaryDirectory(prefix="soak-") as directory, \
            _database(args.backend, Path(directory)) as (settings, database):
        world = seed(settings, channels=CHANNELS)
        environment = {"DATABASE_URL": settings.database_url, "WEB_WORKERS": str(args.workers),
                       "RATE_LIMIT_ENABLED": "false", "MAX_CONNECTIONS_PER_ADDRESS": "0"}
        with gunicorn_server(environment) as server:
            wait_for_workers(server, args.workers)
            token = world.owner.token
            maximum = measure_maximum(server, token, world.channel_ids)
            rate = maximum * args.fraction
            print(f"measured maximum {maximum:.0f} req/s; soaking at {rate:.0f} req/s for {duration:.0f}s", flush=True)
            faults = Faults(server, database, duration) if args.faults else None
            tally, details = soak(server, token, world.channel_ids, rate, duration, faults)
            lost = lost_writes(server, token, tally)
            worker_timeouts = server.log().count("WORKER TIMEOUT")

    answered = sum(tally.statuses.values())
    unexpected = {status: n for status, n in tally.statuses.items()
                  if not 200 <= status < 300 and status not in EXPECTED_STATUSES}
    latencies = sorted(tally.latencies)
    report = {
        "backend": args.backend, "workers": args.workers, "maximum_rps": round(maximum, 1),
        "offered_rps": round(rate, 1), "achieved_rps": round(answered / details["seconds"], 1),
        "seconds": round(details["seconds"], 1), "requests": answered, "statuses": dict(tally.statuses),
        "unexpected_answers": unexpected, "connection_failures": dict(tally.failures),
        "not_sent_all_clients_busy": details["skipped"],
        "acknowledged_writes": len(tally.acknowledged), "lost_writes": len(lost),
        "faults": [recovery(tally, fault) for fault in (faults.done if faults else [])],
        "latency_ms": {"p50": round(statistics.median(latencies) * 1000, 1) if latencies else None,
                       "p99": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1) if latencies else None,
                       "max": round(latencies[-1] * 1000, 1) if latencies else None},
        "worker_rss_mb": details["memory"],
        "worker_timeouts": worker_timeouts,
        # The machine may be shared: its load explains slow figures.
        "load_average_at_end": [round(load, 1) for load in os.getloadavg()],
    }
    print(json.dumps(report, indent=2))
    # Without faults a connection failure is a failure; with a worker SIGKILLed, its requests in flight are cut.
    failures_allowed = args.faults
    healthy = not unexpected and not lost and not worker_timeouts and (failures_allowed or not tally.failures)
    print("PASS" if healthy else "FAIL: unexpected answers, lost writes, connection failures or worker timeouts above")
    return 0 if healthy else 1


@contextlib.contextmanager
def _database(backend: str, directory: Path):
    """(settings, the private PostgreSQL server or None) of a migrated database for the soak."""
    if backend == "sqlite":
        with migrated_database("sqlite", directory) as settings:
            yield settings, None
        return
    from sqlalchemy import create_engine

    from app.cli.db import upgrade
    from config import Settings

    with postgres_server() as database:
        engine = create_engine(database.url)
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        yield Settings(database_url=database.url, rate_limit_enabled=False), database


if __name__ == "__main__":
    sys.exit(main())
