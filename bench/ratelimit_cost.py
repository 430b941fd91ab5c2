"""What counting a request's rate limits costs, per storage: CPU microseconds per request, and the ratio to
per-process memory (counts of one worker alone, the default before the shared table).

    .venv/bin/python -m bench.ratelimit_cost [--requests 20000] [--rounds 3]

Each request is what the hooks do for an authenticated message send: the global and the route bucket counted,
their state read for the headers (app.ratelimit.RateLimiter.check), and the address's invalid-request windows
tested. The storages alternate within each round, so that the machine's load weighs on all of them alike; the
figure is process CPU time (not wall time), the median over the rounds. Redis is a private server on loopback.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from app.api.routes import RouteSpec
from app.ratelimit import RATE_LIMIT_TABLE_ENVIRONMENT, RateLimiter
from config import Settings
from tests.security.servers import redis_server

ROUTE = RouteSpec(rule="/channels/<channel_id>/messages", method="POST", endpoint="create_message", summary="",
                  responses={200: None}, rate_limit="messages.create", public=False)


def cost_per_request(limiter: RateLimiter, requests: int) -> float:
    """CPU microseconds per request over ``requests`` requests of 64 users in 16 channels."""
    started = time.process_time()
    for serial in range(requests):
        limiter.check(ROUTE, {"channel_id": str(1_000_000 + serial % 16)}, f"user:{serial % 64}", authenticated=True)
        limiter.invalid_refusal("127.0.0.1")
    return (time.process_time() - started) / requests * 1e6


def main(argv: list[str] | None = None) -> None:
    import os

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    limits = {"rate_limit_global_per_second": 10**6, "rate_limit_message_create": "1000000/5"}
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as directory, \
            redis_server() as redis_url:
        os.environ[RATE_LIMIT_TABLE_ENVIRONMENT] = str(Path(directory) / "table")
        limiters = {
            "memory (per process)": RateLimiter(Settings(rate_limit_storage_url="memory://", **limits)),
            "shared table (host)": RateLimiter(Settings(rate_limit_storage_url="", **limits)),
            "redis (loopback)": RateLimiter(Settings(rate_limit_storage_url=redis_url, **limits)),
        }
        figures: dict[str, list[float]] = {name: [] for name in limiters}
        for _round in range(args.rounds):
            for name, limiter in limiters.items():
                figures[name].append(cost_per_request(limiter, args.requests))
    baseline = statistics.median(figures["memory (per process)"])
    print(f"{'storage':<22} {'CPU us/request':>15} {'x memory':>9}")
    for name, samples in figures.items():
        median = statistics.median(samples)
        print(f"{name:<22} {median:>15.1f} {median / baseline:>9.2f}")


if __name__ == "__main__":
    main()
