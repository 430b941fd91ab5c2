"""What the operability instrumentation costs: requests per second with it and without it, in the same run.

    .venv/bin/python -m bench.instrumentation_cost [--seconds 8] [--rounds 3] [--connections 16] [--workers 1]

"With" is the default configuration: metrics (request histogram, store and pool instrumentation, /metrics in
multiprocess mode), a JSON access line per request, and gevent's monitor thread. "Without" turns all three
off (METRICS_ENABLED=false, LOG_LEVEL=WARNING, HUB_BLOCKING_THRESHOLD_MS=0). Both serve the same SQLite
database under config/gunicorn.py and are driven by wrk on 127.0.0.1, on two routes: the latest 50 messages of
a channel (the common read) and the channel itself (a cheap request, where the fixed cost per request shows
most). Runs alternate, with the order swapped every round (with, without; without, with; ...), so that drift
on a shared machine hits both alike; the ratio of the medians is printed per route. Beside requests per second,
the workers' CPU time per request (from /proc, so other processes' load does not inflate it) gives the cost
on a busy machine, where throughput mostly measures the neighbours. One worker by default: with several,
SQLite's single writer lock makes the workers' writes (the token's last use, messages) queue for each other,
and that noise would swamp the instrumentation's cost.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from app.extensions import Resources
from app.messages.base import Message
from bench.probes import workers_cpu_seconds
from bench.server import serve
from bench.wrk import require_wrk, run_wrk
from tests.support.databases import migrated_database
from tests.support.factories import Factory

SERVICE_APP = "wsgi:application"
READY_PATH = "/api/v10/users/@me"
PAGE = 50
ROUTES = {"latest 50 messages": "/api/v10/channels/{channel_id}/messages?limit=50",
          "channel": "/api/v10/channels/{channel_id}"}
CONFIGURATIONS = {
    "with": {"METRICS_ENABLED": "true", "LOG_LEVEL": "INFO", "HUB_BLOCKING_THRESHOLD_MS": "100"},
    "without": {"METRICS_ENABLED": "false", "LOG_LEVEL": "WARNING", "HUB_BLOCKING_THRESHOLD_MS": "0"},
}


def seed(settings) -> tuple[str, int]:
    """A bot with a channel of PAGE messages; returns (token, channel_id)."""
    resources = Resources(settings)
    try:
        make = Factory(resources)
        bot = make.actor("bench-bot")
        _guild_id, channel_id = make.guild(bot)
        for number in range(PAGE):
            resources.message_store.create_message(Message(
                id=resources.ids.next_id(), channel_id=channel_id, author_id=bot.id,
                content=f"benchmark message {number}"))
        return bot.token, channel_id
    finally:
        resources.close()


def measure(settings, token: str, channel_id: int, args, log_path: Path) -> dict[tuple[str, str], list[tuple]]:
    """(requests per second, worker CPU ms per request) by (configuration, route), one pair per round."""
    environment = {"DATABASE_URL": settings.database_url, "WEB_WORKERS": str(args.workers),
                   "RATE_LIMIT_ENABLED": "false"}
    figures: dict[tuple[str, str], list[tuple]] = {}
    for round_number in range(1, args.rounds + 1):
        order = list(CONFIGURATIONS) if round_number % 2 else list(reversed(CONFIGURATIONS))
        for name in order:
            with serve(SERVICE_APP, {**environment, **CONFIGURATIONS[name]}, log_path,
                       ready_path=READY_PATH) as server:
                for route, template in ROUTES.items():
                    wrk_environment = {"BENCH_PATHS": template.format(channel_id=channel_id), "BENCH_TOKENS": token}
                    run_wrk(server.url, "get.lua", connections=args.connections, seconds=args.warmup,
                            environment=wrk_environment)
                    cpu_before = workers_cpu_seconds(server.process.pid)
                    result = run_wrk(server.url, "get.lua", connections=args.connections, seconds=args.seconds,
                                     environment=wrk_environment)
                    cpu_ms = 1000 * (workers_cpu_seconds(server.process.pid) - cpu_before) / max(result.requests, 1)
                    if result.errors:
                        raise RuntimeError(f"{name}, {route}: {result.errors} errors under load; see {log_path}")
                    figures.setdefault((name, route), []).append((result.requests_per_second, cpu_ms))
                    print(f"round {round_number} {name:>7} {route:>18}: {result.requests_per_second:8.1f} req/s  "
                          f"{cpu_ms:6.2f} CPU ms/req  p50 {result.p50_ms:6.1f} ms  p99 {result.p99_ms:6.1f} ms",
                          flush=True)
    return figures


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.instrumentation_cost",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds of measured load per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load before each run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each configuration, alternating")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    require_wrk()

    with tempfile.TemporaryDirectory(prefix="instrumentation-cost-") as directory:
        with migrated_database("sqlite", Path(directory)) as settings:
            token, channel_id = seed(settings)
            log_path = Path(directory) / "servers.log"
            figures = measure(settings, token, channel_id, args, log_path)

    print(f"\n{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, SQLite, {args.workers} worker(s), "
          f"{args.connections} connections, {args.rounds} x {args.seconds:g} s per figure, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (medians, req/s)")
    print(f"{'route':>20} {'with':>9} {'without':>9} {'ratio':>7}   "
          f"{'CPU ms/req with':>16} {'without':>8} {'ratio':>7}")
    for route in ROUTES:
        rate_with, cpu_with = (statistics.median(column) for column in zip(*figures[("with", route)]))
        rate_without, cpu_without = (statistics.median(column) for column in zip(*figures[("without", route)]))
        print(f"{route:>20} {rate_with:9.1f} {rate_without:9.1f} {rate_with / rate_without:7.3f}   "
              f"{cpu_with:16.2f} {cpu_without:8.2f} {cpu_with / cpu_without:7.3f}")

if __name__ == "__main__":
    main()
