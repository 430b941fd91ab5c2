"""Soak: the service under steady load at a fraction of its measured maximum; not part of CI.

    .venv/bin/python -m bench.soak [--duration 120] [--fraction 0.7] [--backend sqlite|postgres] [--workers 2]

First measures the maximum throughput of a mixed workload (a quarter writes, the rest history reads, across
several channels) with closed-loop clients, then runs the same mix open-loop at ``fraction`` of it for
``duration`` seconds (10 minutes at most). It passes (exit status 0) only with zero 5xx answers and zero lost
writes: every message acknowledged with a 2xx is read back at the end, with its content. It reports the
workers' resident memory at the start and the end of the soak. Rate limits are off: this measures the service,
not its limits. Traffic goes to a gunicorn it starts on a loopback port and stops by PID.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
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
from tests.support.databases import migrated_database  # noqa: E402
from tests.support.server import gunicorn_server  # noqa: E402

MAX_DURATION = 600.0
CHANNELS = 16
WRITE_SHARE = 0.25
MEASURE_SECONDS = 10.0
MEASURE_CLIENTS = 32
#: Requests in flight at most during the soak: past that the service is falling behind, and more clients would
#: only queue longer, so further requests are counted as not sent.
SOAK_CLIENTS = 64
#: gunicorn closes a keep-alive connection idle for 5 s (config/gunicorn.py); reusing one after that fails.
IDLE_RECONNECT_SECONDS = 4.0


@dataclass
class Tally:
    statuses: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    #: (channel id, message id, content) of every write acknowledged with a 2xx.
    acknowledged: list[tuple[int, str, str]] = field(default_factory=list)
    failures: Counter = field(default_factory=Counter)


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


def soak(server, token: str, channels: list[int], rate: float, duration: float, pids: list[int]) -> tuple[Tally, dict]:
    """Open loop: a request every 1/rate seconds, whatever the answers' latency (up to a pool of clients)."""
    tally = Tally()
    clients = [Client(server.host, server.port, token) for _ in range(SOAK_CLIENTS)]
    idle = list(clients)
    pool = gevent.pool.Pool(len(clients))
    memory = {pid: [resident_megabytes(pid)] for pid in pids}
    started = time.monotonic()
    next_sample, serial, skipped = started + 10, 0, 0
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
        if now >= next_sample:
            for pid in pids:
                memory[pid].append(resident_megabytes(pid))
            next_sample += 10
    pool.join(timeout=60)
    for pid in pids:
        memory[pid].append(resident_megabytes(pid))
    return tally, {"memory": memory, "skipped": skipped, "seconds": time.monotonic() - started}


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
    parser.add_argument("--duration", type=float, default=120.0, help=f"soak seconds (at most {MAX_DURATION:.0f})")
    parser.add_argument("--fraction", type=float, default=0.7, help="share of the measured maximum to offer")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    duration = min(args.duration, MAX_DURATION)

    with tempfile.TemporaryDirectory(prefix="soak-") as directory, \
            migrated_database(args.backend, Path(directory)) as settings:
        world = seed(settings, channels=CHANNELS)
        environment = {"DATABASE_URL": settings.database_url, "WEB_WORKERS": str(args.workers),
                       "RATE_LIMIT_ENABLED": "false"}
        with gunicorn_server(environment) as server:
            pids = wait_for_workers(server, args.workers)
            token = world.owner.token
            maximum = measure_maximum(server, token, world.channel_ids)
            rate = maximum * args.fraction
            print(f"measured maximum {maximum:.0f} req/s; soaking at {rate:.0f} req/s for {duration:.0f}s", flush=True)
            tally, details = soak(server, token, world.channel_ids, rate, duration, pids)
            lost = lost_writes(server, token, tally)
            worker_timeouts = server.log().count("WORKER TIMEOUT")

    answered = sum(tally.statuses.values())
    server_errors = sum(n for status, n in tally.statuses.items() if status >= 500)
    latencies = sorted(tally.latencies)
    report = {
        "backend": args.backend, "workers": args.workers, "maximum_rps": round(maximum, 1),
        "offered_rps": round(rate, 1), "achieved_rps": round(answered / details["seconds"], 1),
        "seconds": round(details["seconds"], 1), "requests": answered, "statuses": dict(tally.statuses),
        "connection_failures": dict(tally.failures), "not_sent_all_clients_busy": details["skipped"],
        "server_errors": server_errors, "acknowledged_writes": len(tally.acknowledged), "lost_writes": len(lost),
        "latency_ms": {"p50": round(statistics.median(latencies) * 1000, 1) if latencies else None,
                       "p99": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1) if latencies else None,
                       "max": round(latencies[-1] * 1000, 1) if latencies else None},
        "worker_rss_mb": {str(pid): {"start": round(samples[0], 1), "end": round(samples[-1], 1),
                                     "growth": round(samples[-1] - samples[0], 1)}
                          for pid, samples in details["memory"].items()},
        "worker_timeouts": worker_timeouts,
        # The machine may be shared: its load explains slow figures.
        "load_average_at_end": [round(load, 1) for load in os.getloadavg()],
    }
    print(json.dumps(report, indent=2))
    healthy = not server_errors and not lost and not tally.failures and not worker_timeouts
    print("PASS" if healthy else "FAIL: 5xx, lost writes, connection failures or worker timeouts above")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
