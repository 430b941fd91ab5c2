"""What traces cost: requests per second and worker CPU per request with tracing off, on at a 1% sample rate and
on at 100%, in the same run.

    .venv/bin/python -m bench.tracing_cost [--seconds 8] [--rounds 3] [--connections 16] [--workers 1]

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
import os
import statistics
import tempfile
import threading
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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tracing_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds of measured load per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load before each run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each configuration, rotating the order")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    require_wrk()

    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        with tempfile.TemporaryDirectory(prefix="tracing-cost-") as directory:
            with migrated_database("sqlite", Path(directory)) as settings:
                token, channel_id = seed(settings)
                figures = measure(settings, token, channel_id, args, Path(directory) / "servers.log", receiver)
    finally:
        receiver.shutdown()

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


if __name__ == "__main__":
    main()
