"""What the operability instrumentation costs: requests per second with it and without it, in the same run.

    .venv/bin/python -m bench.instrumentation_cost [--seconds 8] [--rounds 3] [--connections 16] [--workers 1]

"With" is the default configuration: metrics (request histogram, store and pool instrumentation, /metrics in
multiprocess mode), a JSON access line per request, and gevent's monitor thread. "Without" turns all three
off (METRICS_ENABLED=false, LOG_LEVEL=WARNING, HUB_BLOCKING_THRESHOLD_MS=0). Both serve the same SQLite
database under config/gunicorn.py and are driven by wrk on 127.0.0.1 reading the latest 50 messages of a
channel. Runs alternate (with, without, with, ...) so that drift on a shared machine hits both alike; the
ratio of the medians is printed. One worker by default: with several, SQLite's single writer lock (every
transaction begins IMMEDIATE) makes the workers queue for each other, and that noise would swamp the
instrumentation's cost.
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
from bench.server import serve
from bench.wrk import require_wrk, run_wrk
from tests.support.databases import migrated_database
from tests.support.factories import Factory

SERVICE_APP = "wsgi:application"
READY_PATH = "/api/v10/users/@me"
PAGE = 50
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


def measure(settings, token: str, channel_id: int, args, log_path: Path) -> dict[str, list[float]]:
    environment = {"DATABASE_URL": settings.database_url, "WEB_WORKERS": str(args.workers),
                   "RATE_LIMIT_ENABLED": "false"}
    wrk_environment = {"BENCH_PATHS": f"/api/v10/channels/{channel_id}/messages?limit={PAGE}",
                       "BENCH_TOKENS": token}
    throughput: dict[str, list[float]] = {name: [] for name in CONFIGURATIONS}
    for round_number in range(1, args.rounds + 1):
        for name, overrides in CONFIGURATIONS.items():
            with serve(SERVICE_APP, {**environment, **overrides}, log_path, ready_path=READY_PATH) as server:
                run_wrk(server.url, "get.lua", connections=args.connections, seconds=args.warmup,
                        environment=wrk_environment)
                result = run_wrk(server.url, "get.lua", connections=args.connections, seconds=args.seconds,
                                 environment=wrk_environment)
            if result.errors:
                raise RuntimeError(f"{name}: {result.errors} errors under load; see {log_path}")
            throughput[name].append(result.requests_per_second)
            print(f"round {round_number} {name:>7}: {result.requests_per_second:8.1f} req/s  "
                  f"p50 {result.p50_ms:6.1f} ms  p99 {result.p99_ms:6.1f} ms", flush=True)
    return throughput


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
            throughput = measure(settings, token, channel_id, args, log_path)

    with_median = statistics.median(throughput["with"])
    without_median = statistics.median(throughput["without"])
    print(f"\n{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, GET latest {PAGE} messages, SQLite, "
          f"{args.workers} worker(s), {args.connections} connections, {args.rounds} x {args.seconds:g} s each, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"with instrumentation:    {with_median:8.1f} req/s (median)")
    print(f"without instrumentation: {without_median:8.1f} req/s (median)")
    print(f"ratio with / without:    {with_median / without_median:8.3f}  "
          f"(cost {100 * (1 - with_median / without_median):.1f}% of throughput)")


if __name__ == "__main__":
    main()
