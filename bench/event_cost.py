"""What recording events costs a write, and how soon a consumer sees them; not part of CI.

    .venv/bin/python -m bench.event_cost [--backend sqlite|postgres] [--seconds 8] [--rounds 2]
                                         [--connections 32] [--workers 2] [--rate 50] [--latency-seconds 15]

Throughput: POST a message under wrk (bench/lua/create.lua, the ``create`` scenario of ``make bench``) with
``EVENT_BUS=off``, ``sql`` and ``redis``, one gunicorn per run on the same database, runs alternating with the
order rotated every round so that drift on a shared machine hits all three alike; printed as the ratio of the
medians to ``off`` (target: at least 0.85), with the workers' CPU time per request (from /proc, so other
processes' load does not inflate it; the relay runs in the workers, so its work is counted). After each run the
relay's backlog is waited out before the server stops, so a run never inherits the previous one's outbox; the
backlog at the end of the load and the seconds it took to drain are reported.

Latency: for ``sql`` and ``redis``, this process posts messages at a fixed ``rate`` from several senders, each
write on a new connection so that the writes spread over the workers, and records when each answered 2xx, while a
greenlet reads the guild's partition of the bus (``app.events.build_bus(...).read``, blocking) and records when
each ``MESSAGE_CREATE`` arrived; both timestamps come from this process's monotonic clock. The latency of a message
is receipt minus answer, zero when the event arrived before the answer was read (it is recorded in the write's
transaction, so it can). Printed as p50, p99 and max per bus (target: p99 under 50 ms with redis), with the writes
whose event never arrived within ``--settle`` seconds (there should be none).

Redis is the machine's (``REDIS_URL``, default 127.0.0.1:6379) under a key prefix unique to the run, deleted at
the end. Results go to bench/results/<timestamp>-event-cost.json; the servers' log beside it.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import redis  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from app.events import build_bus  # noqa: E402
from app.events.base import partition_of  # noqa: E402
from app.extensions import Resources  # noqa: E402
from bench.paths import RESULTS_DIR  # noqa: E402
from bench.probes import workers_cpu_seconds  # noqa: E402
from bench.server import serve, wait_for_workers  # noqa: E402
from bench.soak import Client  # noqa: E402
from bench.wrk import require_wrk, run_wrk  # noqa: E402
from models.events import event_outbox  # noqa: E402
from tests.support.databases import migrated_database, postgres_reachable  # noqa: E402
from tests.support.factories import Factory  # noqa: E402

SERVICE_APP = "wsgi:application"
READY_PATH = "/api/v10/users/@me"
BUSES = ("off", "sql", "redis")
LATENCY_BUSES = ("sql", "redis")
USERS = 8
CHANNELS = 16
SENDERS = 8
RATIO_TARGET = 0.85
REDIS_P99_TARGET_MS = 50.0
DRAIN_TIMEOUT_SECONDS = 120.0


@dataclasses.dataclass(frozen=True)
class Seeded:
    tokens: list[str]
    guild_id: int
    channels: list[int]


def seed(settings) -> Seeded:
    """Bots that are members of one guild with CHANNELS text channels (through the test factories)."""
    resources = Resources(settings)
    try:
        make = Factory(resources)
        actors = [make.actor(f"events-bench-{n}") for n in range(USERS)]
        guild_id, first_channel = make.guild(actors[0], "event cost")
        for actor in actors[1:]:
            make.member(guild_id, actor)
        channels = [first_channel] + [make.channel(guild_id, f"load-{n}") for n in range(CHANNELS - 1)]
        return Seeded([actor.token for actor in actors], guild_id, channels)
    finally:
        resources.close()


def server_environment(settings, args, bus: str, prefix: str) -> dict[str, str]:
    # Rate limits off: the load is a few clients sending as fast as they can (as in make bench).
    return {"DATABASE_URL": settings.database_url, "WEB_WORKERS": str(args.workers), "RATE_LIMIT_ENABLED": "false",
            "EVENT_BUS": bus, "EVENT_REDIS_PREFIX": prefix}


def outbox_depth(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(event_outbox)).scalar_one()


def wait_for_empty_outbox(engine) -> tuple[int, float]:
    """(rows in the outbox now, seconds until the relay had moved them all)."""
    started = time.monotonic()
    backlog = depth = outbox_depth(engine)
    while depth:
        if time.monotonic() - started > DRAIN_TIMEOUT_SECONDS:
            raise RuntimeError(f"the relay left {depth} of {backlog} outbox rows after {DRAIN_TIMEOUT_SECONDS:.0f} s")
        gevent.sleep(0.05)
        depth = outbox_depth(engine)
    return backlog, time.monotonic() - started


def measure_throughput(settings, engine, seeded: Seeded, args, prefix: str, log_path: Path) -> dict[str, list[dict]]:
    """Per bus, one figure per round: requests per second, worker CPU ms per request, the relay's backlog."""
    wrk_environment = {"BENCH_CHANNELS": ",".join(map(str, seeded.channels)), "BENCH_TOKENS": ",".join(seeded.tokens)}
    runs: dict[str, list[dict]] = {bus: [] for bus in BUSES}
    for round_number in range(args.rounds):
        shift = round_number % len(BUSES)
        for bus in BUSES[shift:] + BUSES[:shift]:
            with serve(SERVICE_APP, server_environment(settings, args, bus, prefix), log_path,
                       ready_path=READY_PATH) as server:
                wait_for_workers(server, args.workers)
                run_wrk(server.url + "/", "create.lua", connections=args.connections, seconds=args.warmup,
                        environment=wrk_environment)
                if bus != "off":
                    wait_for_empty_outbox(engine)
                cpu_before = workers_cpu_seconds(server.process.pid)
                result = run_wrk(server.url + "/", "create.lua", connections=args.connections, seconds=args.seconds,
                                 environment=wrk_environment)
                # The relay's work after the load is part of what the load cost. With events off there is no
                # relay, and nothing new in the outbox.
                backlog, drain_seconds = wait_for_empty_outbox(engine) if bus != "off" else (0, 0.0)
                cpu_ms = 1000 * (workers_cpu_seconds(server.process.pid) - cpu_before) / max(result.requests, 1)
            if result.errors:
                raise RuntimeError(f"EVENT_BUS={bus}: {result.errors} errors under load; see {log_path}")
            figures = {**result.as_dict(), "cpu_ms_per_request": round(cpu_ms, 3), "outbox_backlog": backlog,
                       "drain_seconds": round(drain_seconds, 2)}
            runs[bus].append(figures)
            print(f"round {round_number + 1} {bus:>5}: {result.requests_per_second:7.1f} req/s  "
                  f"{cpu_ms:6.2f} CPU ms/req  p50 {result.p50_ms:6.1f} ms  p99 {result.p99_ms:7.1f} ms  "
                  f"outbox {backlog} rows, drained in {drain_seconds:.2f} s", flush=True)
    return runs


def measure_latency(settings, engine, seeded: Seeded, args, bus: str, prefix: str, log_path: Path) -> dict:
    """Post at a fixed rate while a consumer reads the bus; the delay from each 2xx to its event's receipt."""
    bus_settings = dataclasses.replace(settings, event_bus=bus, event_redis_prefix=prefix)
    consumer_bus = build_bus(bus_settings, engine)
    partition = partition_of(seeded.guild_id, None, bus_settings.event_partitions)
    answered: dict[str, float] = {}
    received: dict[str, float] = {}
    statuses: dict[int, int] = {}
    try:
        with serve(SERVICE_APP, server_environment(settings, args, bus, prefix), log_path,
                   ready_path=READY_PATH) as server:
            wait_for_workers(server, args.workers)
            position = consumer_bus.latest_position(partition)

            def consume() -> None:
                nonlocal position
                while True:
                    events = consumer_bus.read(partition, position, 500, block_seconds=1.0)
                    now = time.monotonic()
                    for event in events:
                        if event.type == "MESSAGE_CREATE":
                            received.setdefault(event.data["id"], now)
                    if events:
                        position = events[-1].position

            def send(sender: int) -> None:
                token = seeded.tokens[sender % len(seeded.tokens)]
                interval = SENDERS / args.rate
                due = started + sender / args.rate
                serial = 0
                while due < started + args.latency_seconds:
                    gevent.sleep(max(0.0, due - time.monotonic()))
                    channel_id = seeded.channels[(sender + serial * SENDERS) % len(seeded.channels)]
                    # A new connection per write: a keep-alive one stays with the worker that accepted it, and the
                    # relay wakes at once for writes in its own worker but polls for the other's, so the writes
                    # must spread over the workers as a real load's do.
                    client = Client(server.host, server.port, token)
                    try:
                        status, raw = client.request("POST", f"/api/v10/channels/{channel_id}/messages",
                                                     {"content": f"event latency {sender}-{serial}"})
                    finally:
                        if client.connection is not None:
                            client.connection.close()
                    now = time.monotonic()
                    statuses[status] = statuses.get(status, 0) + 1
                    if 200 <= status < 300:
                        answered[json.loads(raw)["id"]] = now
                    serial += 1
                    due += interval

            consumer = gevent.spawn(consume)
            started = time.monotonic()
            gevent.joinall([gevent.spawn(send, sender) for sender in range(SENDERS)], raise_error=True)
            deadline = time.monotonic() + args.settle
            while not answered.keys() <= received.keys() and time.monotonic() < deadline and not consumer.dead:
                gevent.sleep(0.05)
            consumer.kill()
            if consumer.exception is not None:
                raise consumer.exception
    finally:
        consumer_bus.close()
    delays_ms = sorted(max(0.0, received[message_id] - at) * 1000
                       for message_id, at in answered.items() if message_id in received)
    figures = {"rate": args.rate, "seconds": args.latency_seconds, "acknowledged": len(answered),
               "statuses": {str(status): count for status, count in statuses.items()},
               "missing_events": len(answered.keys() - received.keys()),
               **({"p50_ms": round(percentile(delays_ms, 50), 2), "p99_ms": round(percentile(delays_ms, 99), 2),
                   "max_ms": round(delays_ms[-1], 2)} if delays_ms else {})}
    print(f"latency {bus:>5}: {len(answered)} writes answered 2xx, {figures['missing_events']} events missing, "
          f"p50 {figures.get('p50_ms', float('nan')):.1f} ms, p99 {figures.get('p99_ms', float('nan')):.1f} ms, "
          f"max {figures.get('max_ms', float('nan')):.1f} ms", flush=True)
    return figures


def percentile(ordered: list[float], rank: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return ordered[min(len(ordered) - 1, max(0, round(rank / 100 * len(ordered)) - 1))]


def delete_streams(redis_url: str, prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def summary(runs: dict[str, list[dict]], latency: dict[str, dict]) -> dict:
    medians = {bus: {key: statistics.median(figures[key] for figures in runs[bus])
                     for key in ("requests_per_second", "cpu_ms_per_request", "p99_ms")} for bus in BUSES}
    off = medians["off"]
    ratios = {bus: {"throughput_vs_off": round(medians[bus]["requests_per_second"] / off["requests_per_second"], 3),
                    "cpu_per_request_vs_off": round(medians[bus]["cpu_ms_per_request"] / off["cpu_ms_per_request"], 3)}
              for bus in BUSES if bus != "off"}
    return {"medians": medians, "ratios": ratios,
            "targets": {f"throughput with EVENT_BUS={bus} >= {RATIO_TARGET} x off":
                        ratios[bus]["throughput_vs_off"] >= RATIO_TARGET for bus in ratios}
            | {f"event latency p99 with redis < {REDIS_P99_TARGET_MS:g} ms":
               latency.get("redis", {}).get("p99_ms", float("inf")) < REDIS_P99_TARGET_MS
               and latency.get("redis", {}).get("missing_events") == 0}}


def print_summary(result: dict, args) -> None:
    medians, ratios = result["summary"]["medians"], result["summary"]["ratios"]
    print(f"\n{result['started_at']}, {args.backend}, {args.workers} workers, {args.connections} connections, "
          f"{args.rounds} x {args.seconds:g} s per bus, load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs (medians)")
    print(f"{'EVENT_BUS':>9} {'req/s':>8} {'x off':>6} {'CPU ms/req':>11} {'x off':>6} {'p99 ms':>8}")
    for bus in BUSES:
        ratio = ratios.get(bus, {"throughput_vs_off": 1.0, "cpu_per_request_vs_off": 1.0})
        print(f"{bus:>9} {medians[bus]['requests_per_second']:8.1f} {ratio['throughput_vs_off']:6.3f} "
              f"{medians[bus]['cpu_ms_per_request']:11.2f} {ratio['cpu_per_request_vs_off']:6.3f} "
              f"{medians[bus]['p99_ms']:8.1f}")
    print(f"\nevent latency, 2xx to consumer receipt, at {args.rate:g} writes/s")
    print(f"{'EVENT_BUS':>9} {'writes':>7} {'missing':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for bus, figures in result["latency"].items():
        print(f"{bus:>9} {figures['acknowledged']:7d} {figures['missing_events']:8d} "
              f"{figures.get('p50_ms', float('nan')):8.1f} {figures.get('p99_ms', float('nan')):8.1f} "
              f"{figures.get('max_ms', float('nan')):8.1f}")
    print()
    for name, passed in result["summary"]["targets"].items():
        print(f"{'PASS' if passed else 'FAIL'} {name}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.event_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds of measured wrk load per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load before each run")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each EVENT_BUS, order rotated per round")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--rate", type=float, default=50.0, help="writes per second of the latency load")
    parser.add_argument("--latency-seconds", type=float, default=15.0, help="seconds of the latency load per bus")
    parser.add_argument("--settle", type=float, default=10.0,
                        help="seconds to wait after the latency load for events not yet received")
    args = parser.parse_args(argv)
    require_wrk()
    if args.backend == "postgres" and (problem := postgres_reachable()) is not None:
        parser.error(f"PostgreSQL: {problem}")

    started = datetime.now(timezone.utc)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    RESULTS_DIR.mkdir(exist_ok=True)
    log_path = RESULTS_DIR / f"{stamp}-event-cost-servers.log"
    prefix = f"chatstore-bench-{uuid.uuid4().hex[:12]}"
    result = {"started_at": started.isoformat(timespec="seconds"), "settings": vars(args),
              "machine": {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()}}
    with tempfile.TemporaryDirectory(prefix="event-cost-") as directory:
        with migrated_database(args.backend, Path(directory)) as settings:
            seeded = seed(settings)
            resources = Resources(settings)
            try:
                result["throughput"] = measure_throughput(settings, resources.engine, seeded, args, prefix,
                                                          log_path)
                result["latency"] = {bus: measure_latency(settings, resources.engine, seeded, args, bus, prefix,
                                                          log_path) for bus in LATENCY_BUSES}
            finally:
                resources.close()
                delete_streams(settings.redis_url, prefix)
    result["summary"] = summary(result["throughput"], result["latency"])
    path = RESULTS_DIR / f"{stamp}-event-cost.json"
    path.write_text(json.dumps(result, indent=2))
    print_summary(result, args)
    print("written:", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
