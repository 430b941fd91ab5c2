"""The capacity model (docs/capacity.md): from a run's measured CPU per request, what a deployment needs for a
given load. ``make bench`` writes it beside every run (``bench/results/<stamp>-capacity.md``) and, when the run
measured what the model needs on both backends, into docs/capacity.md.

    .venv/bin/python -m bench.capacity bench/results/<stamp>.json [--write-docs]

The load is Discord's published example: about 4 billion messages a day, reads about as many as writes, two
million database requests a second across everything. The model is deliberately simple: every figure is one
measured figure times a rate, divided by a stated utilization, so that each can be checked by hand.
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

from bench.paths import RESULTS_DIR

DOCS_PATH = Path(__file__).resolve().parent.parent / "docs" / "capacity.md"

MESSAGES_PER_DAY = 4_000_000_000
#: Reads (pages of messages) per write: "about even".
READS_PER_WRITE = 1.0
#: Peak over the day's mean: chat traffic follows the waking day.
PEAK_FACTOR = 2.0
#: Share of reads answered from a worker's memory (the read cache): the model takes the pessimistic end, a
#: ScyllaDB-sized history where nearly every page is read from the store.
CACHED_READ_SHARE = 0.0
#: CPU a core may run at before queueing makes the tail grow (p99 / mean rises steeply above it).
UTILIZATION = 0.6
WORKER_CORES_PER_HOST = 32
DATABASE_CORES_PER_NODE = 64
#: Discord's database request rate, to set the model's against.
DISCORD_DATABASE_REQUESTS_PER_SECOND = 2_000_000


@dataclass(frozen=True)
class Need:
    backend: str
    writes_per_second: float
    reads_per_second: float
    create_ms: float
    page_ms: float
    create_db_ms: float | None
    page_db_ms: float | None
    db_requests_per_create: float
    db_requests_per_page: float

    @property
    def worker_cores(self) -> float:
        busy = (self.writes_per_second * self.create_ms + self.reads_per_second * self.page_ms) / 1000
        return busy / UTILIZATION

    @property
    def hosts(self) -> int:
        return math.ceil(self.worker_cores / WORKER_CORES_PER_HOST)

    @property
    def workers(self) -> int:
        return math.ceil(self.worker_cores)  # one gevent worker per core

    @property
    def database_cores(self) -> float | None:
        if self.create_db_ms is None or self.page_db_ms is None:
            return None
        busy = (self.writes_per_second * self.create_db_ms + self.reads_per_second * self.page_db_ms) / 1000
        return busy / UTILIZATION

    @property
    def write_database_cores(self) -> float | None:
        if self.create_db_ms is None:
            return None
        return self.writes_per_second * self.create_db_ms / 1000 / UTILIZATION

    @property
    def database_requests_per_second(self) -> float:
        return (self.writes_per_second * self.db_requests_per_create
                + self.reads_per_second * self.db_requests_per_page)


def _net(figures: dict) -> float:
    return figures.get("net_cpu_ms_per_request", figures["cpu_ms_per_request"])


def needs(run: dict) -> list[Need]:
    writes = MESSAGES_PER_DAY / 86_400 * PEAK_FACTOR
    reads = writes * READS_PER_WRITE
    found = []
    for backend, outcome in run["backends"].items():
        scenarios = outcome.get("scenarios", {})
        if "create" not in scenarios or ("uncached" not in scenarios and "latest" not in scenarios):
            continue
        create = scenarios["create"]
        uncached = scenarios.get("uncached") or scenarios["latest"]
        cached = scenarios.get("latest") or uncached
        page_ms = CACHED_READ_SHARE * _net(cached) + (1 - CACHED_READ_SHARE) * _net(uncached)
        page_db = None
        if uncached.get("db_cpu_ms_per_request") is not None:
            page_db = (CACHED_READ_SHARE * cached.get("db_cpu_ms_per_request", 0.0)
                       + (1 - CACHED_READ_SHARE) * uncached["db_cpu_ms_per_request"])
        # Database requests (statements' round trips) per API request, as the code sends them: a create is one
        # transaction of four statements (the message, its bucket, the bookkeeping, the event), which PostgreSQL
        # gets as one query with its BEGIN and COMMIT; an uncached page reads the versions, the page, and its
        # reactions and authors when it has them.
        found.append(Need(backend=backend, writes_per_second=writes, reads_per_second=reads,
                          create_ms=_net(create), page_ms=page_ms, create_db_ms=create.get("db_cpu_ms_per_request"),
                          page_db_ms=page_db, db_requests_per_create=1.0 if backend == "postgres" else 4.0,
                          db_requests_per_page=1.0 + uncached.get("store_calls_per_request", 1.0)))
    return found


def markdown(run: dict, source: str) -> str:
    rows = needs(run)
    writes = MESSAGES_PER_DAY / 86_400
    lines = [
        "# Capacity model",
        "",
        f"Generated by `bench/capacity.py` from `{source}` (run started {run['started_at']}); `make bench` "
        "recomputes it. Every figure below is a measured CPU time per request times a rate, over a utilization.",
        "",
        "## The load",
        "",
        f"Discord's published example: {MESSAGES_PER_DAY / 1e9:.0f} billion messages a day, {writes:,.0f} writes a "
        f"second on average; at a peak of {PEAK_FACTOR:g}x the mean, {writes * PEAK_FACTOR:,.0f} writes and "
        f"{writes * PEAK_FACTOR * READS_PER_WRITE:,.0f} page reads a second (reads about even with writes). "
        f"Pages are taken as read from the store ({1 - CACHED_READ_SHARE:.0%} uncached: a ScyllaDB-sized history, "
        f"where a worker's memory holds little of what is read). Cores run at {UTILIZATION:.0%} at most, so that "
        f"the tail stays short; worker hosts have {WORKER_CORES_PER_HOST} cores, database nodes "
        f"{DATABASE_CORES_PER_NODE}.",
        "",
        "## What it needs",
        "",
        "| backend | worker CPU ms / create | worker CPU ms / page | worker cores (= gevent workers) | worker hosts "
        "| database CPU ms / create | / page | database cores | of which writes | database requests / s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for need in rows:
        database = need.database_cores
        writes_db = need.write_database_cores
        lines.append(
            f"| {need.backend} | {need.create_ms:.2f} | {need.page_ms:.2f} | {need.worker_cores:,.0f} | "
            f"{need.hosts:,} | {_ms(need.create_db_ms)} | {_ms(need.page_db_ms)} | "
            f"{'' if database is None else f'{database:,.0f}'} | {'' if writes_db is None else f'{writes_db:,.0f}'} | "
            f"{need.database_requests_per_second:,.0f} |")
    lines += [
        "",
        "CPU per request is the run's net figure (the workers' CPU over the requests answered, less what they spend "
        "idle). Database CPU is measured only where the server is local (PostgreSQL's backends for the service's "
        "database); the SQLite row has none because SQLite runs inside the workers, whose CPU includes it. SQLite "
        "is one file on one host, so its row only says what the workers would cost: at this load the deployment "
        "is PostgreSQL for the metadata, and for the messages PostgreSQL or ScyllaDB (not measured by `make "
        "bench`; bench/scylla_overhead.py measures the Scylla store against its bare driver).",
        "",
        "## Where the first bottleneck is",
        "",
    ]
    postgres = next((need for need in rows if need.backend == "postgres"), None)
    if postgres is not None and postgres.write_database_cores is not None:
        lines += [
            f"- **PostgreSQL's single primary takes every write.** At the peak, the writes alone keep "
            f"{postgres.write_database_cores:,.0f} database cores busy at {UTILIZATION:.0%}, "
            f"{postgres.write_database_cores / DATABASE_CORES_PER_NODE:.1f} nodes' worth, and one primary cannot be "
            "split: past one node, the SQL store must be partitioned by channel (several PostgreSQL clusters, each "
            "owning a range of channels) or the messages moved to ScyllaDB (MESSAGE_STORE=scylla), whose writes "
            "spread over its nodes. Reads can go to replicas, but the read cache's versions are read on the "
            "primary.",
        ]
    production = postgres or (rows[0] if rows else None)
    lines += [
        f"- **Worker CPU** is the next: {production.worker_cores if production else 0:,.0f} cores on "
        f"{production.backend if production else 'no backend'}, spread over as many "
        "hosts as needed (workers share nothing but the database and the rate-limit storage), so it scales "
        "out; what it costs is set by the CPU per request, which issue 17 aims to cut by half.",
        f"- **Database requests:** the model's {max((n.database_requests_per_second for n in rows), default=0):,.0f}"
        f" a second against Discord's {DISCORD_DATABASE_REQUESTS_PER_SECOND:,}: a create is one round trip on "
        "PostgreSQL (its transaction as one query) and a page two or three, so the request rate follows the API "
        "rate closely; no fan-out multiplies it.",
        "- **The next one** after those: the event stream. Every write's event goes through the outbox and the "
        "relay, one leader for the whole deployment; at tens of thousands of writes a second it must be "
        "partitioned too (EVENT_BUS=redis with several relays, one per partition range).",
        "",
    ]
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def complete(run: dict) -> bool:
    """Whether the run measured what the model needs on both backends (creates and uncached pages)."""
    return all(backend in run["backends"] and {"create", "uncached"} <= set(run["backends"][backend].get(
        "scenarios", {})) for backend in ("sqlite", "postgres"))


def write(run: dict, json_path: Path, *, docs: bool) -> list[Path]:
    text = markdown(run, json_path.name)
    written = [json_path.with_name(json_path.stem + "-capacity.md")]
    written[0].write_text(text)
    if docs:
        DOCS_PATH.write_text(text)
        written.append(DOCS_PATH)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, nargs="?", help="a run's JSON (default: the newest in bench/results)")
    parser.add_argument("--write-docs", action="store_true", help="also write docs/capacity.md")
    args = parser.parse_args(argv)
    path = args.results or max(RESULTS_DIR.glob("*[0-9]Z.json"))
    for written in write(json.loads(path.read_text()), path, docs=args.write_docs):
        print("written:", written)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
