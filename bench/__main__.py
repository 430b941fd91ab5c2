"""``make bench``: the service under wrk on each SQL backend, beside same-run baselines.

    .venv/bin/python -m bench [--quick] [--duration 10] [--scenarios latest,hot] [--backends sqlite]
                              [--history-size 1000000] [--connections 64] [--workers 2] [--event-bus off]

Every figure is reported as a ratio to a baseline measured in the same run (the machine is shared, so
absolute numbers drift): the framework ceiling (bench/baseline_app.py answering a tiny JSON body) and the
serialization ceiling (the same app answering a page of 50 messages), both under the service's gunicorn
settings. Writes bench/results/<timestamp>.json, .md and .png; servers' logs go to <timestamp>-servers.log.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy.engine import make_url

from bench import report
from bench.paths import RESULTS_DIR
from bench.probes import (
    LockWaitSampler,
    database_backends_cpu,
    database_cpu_seconds_since,
    hold_idle_connections,
    resident_megabytes,
    statements_per_page,
    store_calls,
    wait_until_idle,
    workers_cpu_seconds,
)
from bench.scenarios import DEFAULT_SERVER_SETTINGS, HOT_CONNECTIONS, SCENARIO_NAMES, SCENARIOS, Scenario
from bench.seed import SeededService, seed
from bench.server import serve, wait_for_workers
from bench.wrk import require_wrk, run_wrk
from config import EVENT_BUSES

BACKENDS = ("sqlite", "postgres")
SERVICE_APP = "wsgi:application"
#: Answers 401 without a token, once a worker has loaded the app.
SERVICE_READY_PATH = "/api/v10/users/@me"
IDLE_CONNECTIONS = 1000
DEFAULT_HISTORY = 1_000_000
QUICK_HISTORY = 100_000


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"short runs (3 s) and a {QUICK_HISTORY:,}-message history, to check the harness")
    parser.add_argument("--duration", type=float, help="seconds of load per scenario (default 10, quick 3)")
    parser.add_argument("--warmup", type=float, help="seconds of unrecorded load before each (default 2, quick 1)")
    parser.add_argument("--scenarios", default=",".join(SCENARIO_NAMES),
                        help=f"comma-separated, from {','.join(SCENARIO_NAMES)}")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated: sqlite,postgres")
    parser.add_argument("--history-size", type=int,
                        help=f"messages in the long channel (default {DEFAULT_HISTORY:,}, quick {QUICK_HISTORY:,})")
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections (hot channel: "
                                                                    f"{HOT_CONNECTIONS})")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--open-loop", type=float, default=0.5, metavar="FRACTION",
                        help="after the closed-loop scenarios, offer the latest page and the create at this fraction "
                             "of their measured maximum, open loop (bench/open_loop.py); 0: not")
    parser.add_argument("--skip-baselines", action="store_true",
                        help="no framework and serialization ceilings, no drift check (their ratios are left out): "
                             "to compare two trees' scenarios by CPU per request")
    parser.add_argument("--profile", action="store_true",
                        help="run each scenario again after its measured run with py-spy on the workers "
                             "(bench/profile.py): where the CPU goes, by layer, and the raw stacks beside the results")
    parser.add_argument("--event-bus", choices=EVENT_BUSES,
                        help="EVENT_BUS of the service (default: the settings' default); off measures the service "
                             "without the cost of recording events")
    args = parser.parse_args(argv)
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    args.history_size = args.history_size or (QUICK_HISTORY if args.quick else DEFAULT_HISTORY)
    args.scenarios = _names(args.scenarios, SCENARIO_NAMES, parser)
    args.backends = _names(args.backends, BACKENDS, parser)
    return args


def _names(raw: str, known, parser) -> list[str]:
    names = [name.strip() for name in raw.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        parser.error(f"unknown {', '.join(unknown)}; choose from {', '.join(known)}")
    return names


def server_environment(args, **extra: str) -> dict[str, str]:
    # The load generator is one client per connection hammering as fast as it can: the rate limits (which
    # would answer most of it with 429) are off, and their cost is not part of these figures.
    environment = {"WEB_WORKERS": str(args.workers), "RATE_LIMIT_ENABLED": "false", **extra}
    if args.event_bus:
        environment["EVENT_BUS"] = args.event_bus
    return environment


def load(server, script: str, connections: int, args, environment: dict[str, str], *,
         count_store_calls: bool = True, database_url: str | None = None) -> dict:
    """Warm up, then measure; the result with the store calls the measured part cost, when the app counts them,
    and, given the PostgreSQL ``database_url`` of the server, the CPU of the local backends serving its database
    and the sessions waiting on locks."""
    database = make_url(database_url).database if database_url else None
    url = server.url + "/"
    if args.warmup:
        run_wrk(url, script, connections=connections, seconds=args.warmup, environment=environment)
    if count_store_calls:
        wait_until_idle(server.host, server.port)
    before = store_calls(server.host, server.port) if count_store_calls else None
    idle_ms_per_second = _idle_cpu_ms_per_second(server)
    cpu_before = workers_cpu_seconds(server.process.pid)
    database_before = database_backends_cpu(database) if database else None
    with (LockWaitSampler(database_url) if database_url else nullcontext()) as lock_waits:
        result = run_wrk(url, script, connections=connections, seconds=args.duration, environment=environment)
    # From /proc: unlike throughput, it is not lowered by whatever else the machine runs.
    cpu_ms_total = 1000 * (workers_cpu_seconds(server.process.pid) - cpu_before)
    cpu_ms = cpu_ms_total / max(result.requests, 1)
    # Less what the workers spend with no request at all (the relay's and the indexer's polls): at the few hundred
    # requests per second of a shared machine that floor is a large part of the gross figure, at production
    # rates a negligible one.
    net_cpu_ms = max(cpu_ms_total - idle_ms_per_second * result.seconds, 0.0) / max(result.requests, 1)
    figures = {**result.as_dict(), "connections": connections, "cpu_ms_per_request": round(cpu_ms, 3),
               "idle_cpu_ms_per_second": round(idle_ms_per_second, 1), "net_cpu_ms_per_request": round(net_cpu_ms, 3)}
    if database_before is not None:
        database_ms = 1000 * database_cpu_seconds_since(database_before, database) / max(result.requests, 1)
        figures["db_cpu_ms_per_request"] = round(database_ms, 3)
    if lock_waits is not None:
        # Sessions waiting on a lock, on average: writers queued on one channel's row.
        figures["lock_waiters"] = round(lock_waits.mean, 2)
    if before is not None:
        # Both counts come from the service, so requests still queued when wrk stopped count on both sides.
        calls = store_calls(server.host, server.port) - before
        figures["store_calls_per_request"] = round(calls.per_request(calls.reached_backend), 3)
        figures["coalesced_per_request"] = round(calls.per_request(calls.coalesced), 3)
    return figures


#: How long the workers' CPU is sampled with no load before each measurement.
IDLE_SAMPLE_SECONDS = 2.0


def _idle_cpu_ms_per_second(server) -> float:
    """The workers' CPU milliseconds per second while nothing is asked of them."""
    before, started = workers_cpu_seconds(server.process.pid), time.monotonic()
    time.sleep(IDLE_SAMPLE_SECONDS)
    return 1000 * (workers_cpu_seconds(server.process.pid) - before) / (time.monotonic() - started)


def _brief(figures: dict) -> str:
    calls = figures.get("store_calls_per_request")
    database = figures.get("db_cpu_ms_per_request")
    waiting = figures.get("lock_waiters")
    return (f"{figures['requests_per_second']:.0f} req/s, {figures['cpu_ms_per_request']:.2f} CPU ms/request "
            f"({figures['net_cpu_ms_per_request']:.2f} net of {figures['idle_cpu_ms_per_second']:.0f} ms/s idle)"
            + ("" if database is None else f" + {database:.2f} PostgreSQL")
            + ("" if waiting is None else f", {waiting:.1f} sessions waiting on a lock") + ", "
            f"p50 {figures['p50_ms']:.1f} ms, "
            f"p99 {figures['p99_ms']:.1f} ms, "
            f"{figures['errors']} errors" + ("" if calls is None else f", {calls:.2f} store calls/request"))


FRAMEWORK_APP = "bench.baseline_app:framework_app"


def run_baselines(args, log_path: Path) -> dict:
    """The two ceilings at both connection counts, and the framework ceiling once more under gunicorn's stock
    gevent worker, to show what the service's fair worker (config/gunicorn.py) does to the tail."""
    runs = [("framework", FRAMEWORK_APP, (), (args.connections, HOT_CONNECTIONS)),
            ("serialization", "bench.baseline_app:serialization_app", (), (args.connections, HOT_CONNECTIONS)),
            ("framework-stock-worker", FRAMEWORK_APP, ("--worker-class", "gevent"), (args.connections,))]
    return _measure_baselines(runs, args, log_path)


def run_drift_check(args, log_path: Path) -> dict:
    """The framework ceiling again at the end: how far the machine drifted while the run went on."""
    return _measure_baselines([("framework-at-end", FRAMEWORK_APP, (), (args.connections,))], args, log_path)


def _measure_baselines(runs, args, log_path: Path) -> dict:
    baselines = {}
    for name, app, options, connection_counts in runs:
        with serve(app, server_environment(args), log_path, options=options) as server:
            wait_for_workers(server, args.workers)
            for connections in connection_counts:
                print(f"  baseline {name} at {connections} connections", flush=True)
                key = name if connections == args.connections else f"{name}@{connections}"
                baselines[key] = load(server, "get.lua", connections, args,
                                      {"BENCH_PATHS": "/api/v10/channels/0/messages", "BENCH_TOKENS": "unused"},
                                      count_store_calls=False)
                print(f"    {_brief(baselines[key])}", flush=True)
    return baselines


def run_backend(backend: str, args, log_path: Path, directory: Path) -> dict:
    from tests.support.databases import migrated_database, postgres_reachable

    if backend == "postgres" and (problem := postgres_reachable()) is not None:
        print(f"  skipping PostgreSQL: {problem}", flush=True)
        return {"skipped": problem}
    from app import create_app

    with migrated_database(backend, directory) as settings:
        print(f"  seeding {backend} ({args.history_size:,} messages in the long channel)", flush=True)
        resources = create_app(settings).extensions["chatstore"]
        try:
            seeded = seed(resources, args.history_size)
            history_statements = _history_statements(resources, seeded)
        finally:
            resources.close()
        print(f"  seeded in {seeded.seconds:.0f} s", flush=True)
        environment = server_environment(args, DATABASE_URL=settings.database_url)
        # PostgreSQL's backends for the service's database: their CPU (when the server runs on this host), locks.
        database_url = settings.database_url if backend == "postgres" else None
        outcome = {"seed_seconds": round(seeded.seconds, 1), "history_size": seeded.history_size,
                   "sparse_messages": seeded.sparse_size, **history_statements, "scenarios": {}}
        selected = [s for s in SCENARIOS if s.name in args.scenarios]
        outcome["ceilings"] = _storage_ceilings(environment, seeded, args, log_path, database_url)
        # One server per set of server settings, the default one (which also measures memory) first.
        groups: dict[tuple, list[Scenario]] = {tuple(sorted(DEFAULT_SERVER_SETTINGS.items())): []}
        for scenario in selected:
            groups.setdefault(tuple(sorted(scenario.server_settings().items())), []).append(scenario)
        for index, (settings_items, batch) in enumerate(groups.items()):
            if not batch and index:
                continue
            with serve(SERVICE_APP, {**environment, **dict(settings_items)}, log_path,
                       ready_path=SERVICE_READY_PATH) as server:
                workers = wait_for_workers(server, args.workers)
                for scenario in batch:
                    outcome["scenarios"][scenario.name] = _run_scenario(server, scenario, seeded, args, database_url)
                    if args.profile:
                        outcome["scenarios"][scenario.name]["profile"] = _profile_scenario(
                            server, scenario, seeded, args, RESULTS_DIR / f"{args.stamp}-{backend}-{scenario.name}.txt")
                if index == 0:
                    outcome["memory"] = _idle_memory(server, workers, seeded)
                    if args.open_loop:
                        outcome["open_loop"] = _open_loop(server, outcome["scenarios"], seeded, args)
        return outcome


#: The storage ceilings, each the load of a service scenario against bench/baseline_app.py's storage_app.
STORAGE_CEILINGS = (("insert", "create"), ("page", "latest"))


def _storage_ceilings(environment: dict[str, str], seeded: SeededService, args, log_path: Path,
                      database_url: str | None) -> dict:
    """The backend's storage ceilings, in this run, on the seeded database: the create's INSERT alone, and the
    latest page's SELECT with its serialization, through the service's engine, pool and gunicorn settings."""
    ceilings = {}
    with serve("bench.baseline_app:storage_app", environment, log_path) as server:
        wait_for_workers(server, args.workers)
        for name, scenario_name in STORAGE_CEILINGS:
            scenario = next(s for s in SCENARIOS if s.name == scenario_name)
            print(f"  storage ceiling {name}: {scenario.title}, the store alone", flush=True)
            ceilings[name] = load(server, scenario.script, args.connections, args, scenario.environment(seeded),
                                  count_store_calls=False, database_url=database_url)
            print(f"    {_brief(ceilings[name])}", flush=True)
    return ceilings


def _open_loop(server, measured: dict, seeded: SeededService, args) -> dict:
    """The latest page and the create offered at ``args.open_loop`` of the throughput their closed-loop scenario
    reached on this server: p50, p99 and p99.9 from when each request was due (coordinated omission counted)."""
    from bench.open_loop import get_request, post_request, run_open_loop
    from bench.scenarios import API

    requests = {
        "latest": get_request(server.host, [f"{API}/channels/{c}/messages?limit=50" for c in seeded.fresh_channels],
                              seeded.tokens),
        "create": post_request(server.host, [f"{API}/channels/{c}/messages" for c in seeded.fresh_channels],
                               seeded.tokens),
    }
    results = {}
    for name, request in requests.items():
        if name not in measured:
            continue
        rate = args.open_loop * measured[name]["requests_per_second"]
        print(f"  open loop: {name} at {rate:.0f} req/s ({args.open_loop:.0%} of its maximum)", flush=True)
        result = run_open_loop(server.host, server.port, request, rate=rate, seconds=args.duration,
                               connections=args.connections).as_dict()
        results[name] = {**result, "fraction_of_max": args.open_loop}
        print(f"    p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, p99.9 {result['p999_ms']:.1f} ms, "
              f"{result['answered']} of {result['offered']} answered, {result['errors']} errors", flush=True)
    return results


def _run_scenario(server, scenario: Scenario, seeded: SeededService, args, database_url: str | None) -> dict:
    connections = scenario.connections or args.connections
    print(f"  {scenario.name}: {scenario.title}", flush=True)
    figures = load(server, scenario.script, connections, args, scenario.environment(seeded),
                   database_url=database_url)
    print(f"    {_brief(figures)}", flush=True)
    return {**figures, "title": scenario.title, "answers_a_page": scenario.answers_a_page}


def _profile_scenario(server, scenario: Scenario, seeded: SeededService, args, raw_path: Path) -> dict:
    """The scenario's load once more, with py-spy on the workers: the share of their CPU in each layer."""
    from bench.profile import profiling, summarize

    with profiling(server.process.pid, raw_path):
        run_wrk(server.url + "/", scenario.script, connections=scenario.connections or args.connections,
                seconds=args.duration, environment=scenario.environment(seeded))
    summary = summarize(raw_path)
    layers = sorted(summary["layers"].items(), key=lambda item: -item[1])
    print("    profile: " + ", ".join(f"{name.split(':')[0]} {share:.0%}" for name, share in layers[:6]), flush=True)
    return summary


def _history_statements(resources, seeded: SeededService) -> dict:
    """SQL statements the message store sends for one page (it bypasses the wrappers: backend queries only)."""
    from app.messages.sql import SqlMessageStore

    store = SqlMessageStore(resources.engine)
    sparse_page: list = []
    sparse = statements_per_page(resources.engine, lambda: sparse_page.extend(
        store.list_messages(seeded.sparse_channel, limit=50)))
    if len(sparse_page) != seeded.sparse_size:
        raise RuntimeError(f"sparse page has {len(sparse_page)} of {seeded.sparse_size} messages")
    deep = statements_per_page(resources.engine, lambda: store.list_messages(
        seeded.history_channel, before=seeded.deep_cursors[0], limit=50))
    return {"sparse_page_statements": sparse, "deep_page_statements": deep}


def _idle_memory(server, workers: list[int], seeded: SeededService) -> dict:
    print(f"  memory at {IDLE_CONNECTIONS} idle keep-alive connections", flush=True)
    before = {pid: resident_megabytes(pid) for pid in workers}
    request = (f"GET /api/v10/users/@me HTTP/1.1\r\nHost: {server.host}\r\n"
               f"Authorization: Bot {seeded.tokens[0]}\r\n\r\n").encode()
    during, answered = hold_idle_connections(server.host, server.port, IDLE_CONNECTIONS, request,
                                             lambda: {pid: resident_megabytes(pid) for pid in workers})
    return {"connections": IDLE_CONNECTIONS, "answered": answered,
            "rss_mb_before": {str(p): round(v, 1) for p, v in before.items()},
            "rss_mb_idle_connections": {str(p): round(v, 1) for p, v in during.items()},
            "max_rss_mb": round(max(during.values()), 1)}


def main(argv=None) -> int:
    args = parse_args(argv)
    require_wrk()
    # A plain SIGTERM would skip the cleanups: stopping the servers, dropping the PostgreSQL database.
    signal.signal(signal.SIGTERM, lambda _signal, _frame: sys.exit(143))
    started = datetime.now(timezone.utc)
    stamp = args.stamp = started.strftime("%Y%m%dT%H%M%SZ")
    RESULTS_DIR.mkdir(exist_ok=True)
    log_path = RESULTS_DIR / f"{stamp}-servers.log"
    run = {
        "started_at": started.isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg(),
                    "python": platform.python_version()},
        "settings": {key: getattr(args, key) for key in ("duration", "warmup", "connections", "workers",
                                                         "history_size", "scenarios", "backends", "event_bus")},
        "baselines": {}, "backends": {},
    }
    clock = time.monotonic()
    if not args.skip_baselines:
        print("baselines", flush=True)
        run["baselines"] = run_baselines(args, log_path)
    with tempfile.TemporaryDirectory(prefix="chatstore-bench-") as directory:
        for backend in args.backends:
            print(backend, flush=True)
            backend_directory = Path(directory) / backend
            backend_directory.mkdir()
            run["backends"][backend] = run_backend(backend, args, log_path, backend_directory)
    if not args.skip_baselines:
        print("drift check", flush=True)
        run["drift"] = run_drift_check(args, log_path)
    run["seconds"] = round(time.monotonic() - clock, 1)
    run["targets"] = [asdict(t) for t in report.evaluate_targets(run)]
    run["backend_targets"] = [asdict(t) for t in report.backend_targets(run)]
    paths = {suffix: RESULTS_DIR / f"{stamp}.{suffix}" for suffix in ("json", "md", "png")}
    paths["json"].write_text(json.dumps(run, indent=2))
    summary = report.markdown(run, chart_name=paths["png"].name)
    paths["md"].write_text(summary)
    if not report.chart(run, paths["png"]):
        del paths["png"]
    from bench import capacity

    written_capacity = capacity.write(run, paths["json"], docs=capacity.complete(run))
    print()
    print(summary)
    print("written:", ", ".join(str(path) for path in [*paths.values(), *written_capacity]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
