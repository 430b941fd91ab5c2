"""What traces cost: requests per second and worker CPU per request with tracing off, on at a 1% sample rate and
on at 100%, in the same run.

    .venv/bin/python -m bench.tracing_cost [--seconds 8] [--rounds 3] [--connections 16] [--workers 1]
    .venv/bin/python -m bench.tracing_cost --in-process [--rounds 7] [--requests 3000]

``--in-process`` measures only the CPU time the service spends per request: each configuration runs in a fresh
process of its own that sends requests through Flask's test client (no gunicorn, no wrk, no sockets), rotating
configurations round by round. On a machine shared with other work, where wrk's throughput mostly measures the
neighbours, this is the steadier figure of what tracing adds to each request.

"On" exports over OTLP/HTTP to a throwaway receiver on 127.0.0.1 in this process (a real export path, as in
production: the batching processor's greenlet, protobuf encoding, an HTTP POST; the receiver only counts what
arrives, so the collector's own cost is not the service's). An in-memory exporter would skip the encoding and
the sending, which are part of what tracing costs the service. Off is the default: no endpoint, so no SDK
is even imported. Everything else is instrumentation_cost's method: one SQLite database, config/gunicorn.py,
wrk on two routes (the latest 50 messages, and creating a message, which adds SQL statements and an event's
producer span), configurations alternating with the order rotated every round, medians, and the workers' CPU
time per request from /proc.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.instrumentation_cost import READY_PATH, SERVICE_APP, seed
from bench.probes import workers_cpu_seconds
from bench.server import serve
from bench.wrk import require_wrk, run_wrk
from tests.support.databases import migrated_database

ROUTES = {"latest 50 messages": ("get.lua", "BENCH_PATHS", "/api/v10/channels/{channel_id}/messages?limit=50"),
          "create a message": ("create.lua", "BENCH_CHANNELS", "{channel_id}")}


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP endpoint that accepts every export and counts them."""

    daemon_threads = True

    def __init__(self):
        self.exports = 0
        self.bytes = 0
        self.lock = threading.Lock()

        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.exports += 1
                    receiver.bytes += len(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def configurations(receiver: Receiver) -> dict[str, dict[str, str]]:
    return {"off": {},
            "1%": {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_TRACES_SAMPLER_ARG": "0.01"},
            "100%": {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_TRACES_SAMPLER_ARG": "1"}}


def measure(settings, token, channel_id, args, log_path, receiver) -> dict[tuple[str, str], list[tuple]]:
    environment = {"DATABASE_URL": settings.database_url, "WEB_WORKERS": str(args.workers),
                   "RATE_LIMIT_ENABLED": "false"}
    named = configurations(receiver)
    figures: dict[tuple[str, str], list[tuple]] = {}
    for round_number in range(args.rounds):
        order = list(named)[round_number % len(named):] + list(named)[:round_number % len(named)]
        for name in order:
            with serve(SERVICE_APP, {**environment, **named[name]}, log_path, ready_path=READY_PATH) as server:
                for route, (script, variable, template) in ROUTES.items():
                    wrk_environment = {variable: template.format(channel_id=channel_id), "BENCH_TOKENS": token}
                    run_wrk(server.url, script, connections=args.connections, seconds=args.warmup,
                            environment=wrk_environment)
                    cpu_before = workers_cpu_seconds(server.process.pid)
                    result = run_wrk(server.url, script, connections=args.connections, seconds=args.seconds,
                                     environment=wrk_environment)
                    cpu_ms = 1000 * (workers_cpu_seconds(server.process.pid) - cpu_before) / max(result.requests, 1)
                    if result.errors:
                        raise RuntimeError(f"{name}, {route}: {result.errors} errors under load; see {log_path}")
                    figures.setdefault((name, route), []).append((result.requests_per_second, cpu_ms))
                    print(f"round {round_number + 1} {name:>5} {route:>18}: {result.requests_per_second:8.1f} "
                          f"req/s  {cpu_ms:6.2f} CPU ms/req  p50 {result.p50_ms:6.1f} ms  "
                          f"p99 {result.p99_ms:6.1f} ms", flush=True)
    return figures


def measure_one_process(database_url: str, token: str, channel_id: int, requests: int, tracing: dict) -> dict:
    """In this process (started under gevent's patch, as the service runs): CPU ms per request of each route
    through the test client, after a warm-up."""
    from app import create_app
    from config import load_settings

    settings = load_settings({"DATABASE_URL": database_url, "RATE_LIMIT_ENABLED": "false", **tracing})
    client = create_app(settings).test_client()
    headers = {"Authorization": f"Bot {token}"}
    calls = {"latest 50 messages": lambda: client.get(f"/api/v10/channels/{channel_id}/messages?limit=50",
                                                      headers=headers),
             "create a message": lambda: client.post(f"/api/v10/channels/{channel_id}/messages", headers=headers,
                                                     json={"content": "benchmark message about as long as a line"})}
    figures = {}
    for route, call in calls.items():
        for _ in range(requests // 10):
            call()
        started = time.process_time()
        for _ in range(requests):
            response = call()
            if response.status_code != 200:
                raise RuntimeError(f"{route}: {response.status_code} {response.get_data(as_text=True)}")
        figures[route] = 1000 * (time.process_time() - started) / requests
    return figures


def measure_in_process(settings, token, channel_id, args, receiver) -> dict[tuple[str, str], list[float]]:
    named = configurations(receiver)
    figures: dict[tuple[str, str], list[float]] = {}
    for round_number in range(args.rounds):
        order = list(named)[round_number % len(named):] + list(named)[:round_number % len(named)]
        for name in order:
            child = subprocess.run(
                [sys.executable, "-m", "gevent.monkey", "--module", "bench.tracing_cost", "--child",
                 json.dumps([settings.database_url, token, channel_id, args.requests, named[name]])],
                capture_output=True, text=True, check=True)
            for route, cpu_ms in json.loads(child.stdout.splitlines()[-1]).items():
                figures.setdefault((name, route), []).append(cpu_ms)
                print(f"round {round_number + 1} {name:>5} {route:>18}: {cpu_ms:6.3f} CPU ms/req", flush=True)
    return figures


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tracing_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds of measured load per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load before each run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each configuration, rotating the order")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--in-process", action="store_true", help="CPU per request through the test client")
    parser.add_argument("--requests", type=int, default=3000, help="requests per route and process (--in-process)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure_one_process(*json.loads(args.child))))
        return
    if not args.in_process:
        require_wrk()

    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        with tempfile.TemporaryDirectory(prefix="tracing-cost-") as directory:
            with migrated_database("sqlite", Path(directory)) as settings:
                token, channel_id = seed(settings)
                if args.in_process:
                    figures = measure_in_process(settings, token, channel_id, args, receiver)
                else:
                    figures = measure(settings, token, channel_id, args, Path(directory) / "servers.log", receiver)
    finally:
        receiver.shutdown()
    if args.in_process:
        report_in_process(figures, args, receiver)
        return

    print(f"\n{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, SQLite, {args.workers} worker(s), "
          f"{args.connections} connections, {args.rounds} x {args.seconds:g} s per figure, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; {receiver.exports} exports "
          f"({receiver.bytes / 1e6:.1f} MB) received (medians)")
    print(f"{'route':>20} {'config':>6} {'req/s':>9} {'x off':>7}   {'CPU ms/req':>10} {'x off':>7}")
    for route in ROUTES:
        rate_off, cpu_off = (statistics.median(column) for column in zip(*figures[("off", route)]))
        for name in configurations(receiver):
            rate, cpu = (statistics.median(column) for column in zip(*figures[(name, route)]))
            print(f"{route:>20} {name:>6} {rate:9.1f} {rate / rate_off:7.3f}   {cpu:10.2f} {cpu / cpu_off:7.3f}")



def report_in_process(figures, args, receiver) -> None:
    print(f"\n{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, SQLite, in process, {args.rounds} processes x "
          f"{args.requests} requests per figure, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
          f"{receiver.exports} exports received (medians)")
    print(f"{'route':>20} {'config':>6} {'CPU ms/req':>10} {'x off':>7}")
    for route in ROUTES:
        cpu_off = statistics.median(figures[("off", route)])
        for name in configurations(receiver):
            cpu = statistics.median(figures[(name, route)])
            print(f"{route:>20} {name:>6} {cpu:10.3f} {cpu / cpu_off:7.3f}")


if __name__ == "__main__":
    main()
