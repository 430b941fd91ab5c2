"""Message search under load: ``python -m bench.search [--backends sqlite,postgres] [--size 1000000]``.

Per backend, one guild of ``--size`` messages (20 channels, 1,000 authors, a tenth of them bots, chat lines
drawn from a Zipf-distributed vocabulary of 5,000 words) is built once and cached: on SQLite as the database and
index files under var/bench-search/, on PostgreSQL as a database kept on the server (``--fresh`` rebuilds and
``--drop`` removes them). Messages go in through the bench's bulk store writer (bench/seed.py), documents straight
into the engine with ``add_missing``, as a reindex writes them.

Then real gunicorn (2 workers, the indexer in them) serves it, and wrk drives, with ``--connections`` 16:

- ``history``: the latest 25 messages of a channel, the baseline of the same run (the read the search route
  does after the engine's query, without the query);
- ``content``: a content query for a word of middling frequency (ranks 50-300 of the vocabulary, found in about
  0.4 % to 3 % of the guild's messages: 4,000 to 30,000 of a million), newest first, 25 per page;
- ``author``: the messages of one author (about 1 in 1,000);
- while ``create`` posts messages under wrk, the indexer's lag (from a message's write to its being searchable)
  from the service's ``chatstore_search_index_lag_seconds`` histogram: p50 and p99 as bucket bounds.

Each row: requests per second, its ratio to ``history``, p50, p99, and the workers' CPU milliseconds per request.
Last, in this process, the rebuild rate of a separate guild of ``--reindex-size`` messages through ``Reindexer``
(store reads, documents, engine writes) against the rate at which the engine accepts the same documents directly.
"""
from __future__ import annotations

import argparse
import http.client
import json
import random
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, insert, text

from bench.probes import workers_cpu_seconds
from bench.seed import _bulk_creator
from bench.server import serve, wait_for_workers
from bench.wrk import run_wrk
from config import PROJECT_ROOT, Settings

CACHE_DIR = PROJECT_ROOT / "var" / "bench-search"
CHANNELS, AUTHORS, VOCABULARY = 20, 1000, 5000
WORDS_PER_MESSAGE = (3, 14)
QUERY_RANKS = range(50, 300)
QUERIES = 64
LAG_METRIC = "chatstore_search_index_lag_seconds"
POSTGRES_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


@dataclass
class Dataset:
    database_url: str
    search_path: str
    guild_id: int
    channels: list[int]
    authors: list[int]
    tokens: list[str]
    words: list[str]
    size: int
    build_seconds: float


def _vocabulary() -> list[str]:
    syllables = ["ka", "lo", "mi", "ne", "ru", "ta", "shi", "po", "ve", "da", "gri", "zu", "fen", "mor", "al"]
    rng = random.Random(7)
    words: set[str] = set()
    while len(words) < VOCABULARY:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def _lines(size: int, words: list[str]):
    """Chat lines whose words follow Zipf's law (the n-th most common word n times rarer than the first)."""
    rng = random.Random(11)
    weights = [1 / rank for rank in range(1, len(words) + 1)]
    for _ in range(size):
        yield " ".join(rng.choices(words, weights, k=rng.randint(*WORDS_PER_MESSAGE)))


def _settings(database_url: str, search_path: str) -> Settings:
    return Settings(database_url=database_url, search_sqlite_path=search_path, rate_limit_enabled=False)


def build(backend: str, size: int, fresh: bool) -> Dataset:
    """The cached dataset of ``backend`` and ``size``, built first when missing (or ``fresh``)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    marker = CACHE_DIR / f"{backend}-{size}.json"
    name = f"chatstore_bench_search_{size}"
    if backend == "sqlite":
        folder = CACHE_DIR / f"sqlite-{size}"
        database_url, search_path = f"sqlite:///{folder / 'chatstore.sqlite3'}", str(folder / "search.sqlite3")
    else:
        database_url, search_path = POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}", ""
    if marker.exists() and not fresh:
        return Dataset(**json.loads(marker.read_text()))
    _drop(backend, size)
    if backend == "sqlite":
        Path(search_path).parent.mkdir(parents=True, exist_ok=True)
    else:
        admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    dataset = _populate(_settings(database_url, search_path), size)
    marker.write_text(json.dumps(asdict(dataset)))
    return dataset


def _drop(backend: str, size: int) -> None:
    (CACHE_DIR / f"{backend}-{size}.json").unlink(missing_ok=True)
    if backend == "sqlite":
        for path in (CACHE_DIR / f"sqlite-{size}").glob("*"):
            path.unlink()
        return
    admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "chatstore_bench_search_{size}" WITH (FORCE)'))
    admin.dispose()


def _populate(settings: Settings, size: int) -> Dataset:
    from app.cli.db import upgrade
    from app.extensions import Resources
    from app.ids import snowflake_from_ms
    from app.search.base import AuthorType, SearchDocument
    from app.search.text import index_text
    from models import User
    from tests.support.factories import Factory

    started = time.monotonic()
    engine = create_engine(settings.database_url)
    upgrade(engine)
    engine.dispose()
    resources = Resources(settings)
    try:
        factory = Factory(resources)
        readers = [factory.actor(f"reader{n}") for n in range(4)]
        guild_id, first = factory.guild(readers[0], "search benchmark")
        for reader in readers[1:]:
            factory.member(guild_id, reader)
        channels = [first] + [factory.channel(guild_id, f"c{n}") for n in range(CHANNELS - 1)]
        authors = [resources.ids.next_id() for _ in range(AUTHORS)]
        bots = set(authors[::10])
        with resources.engine.begin() as connection:
            connection.execute(insert(User), [
                {"id": a, "username": f"author{n}", "bot": a in bots, "created_at": datetime.now(timezone.utc)}
                for n, a in enumerate(authors)])
        words = _vocabulary()
        now_ms = int(time.time() * 1000)
        spacing_ms = max(1, 3 * 365 * 86_400_000 // size)
        search = resources.search_engine
        search.begin_reindex(guild_id, "bench")
        write_messages = _bulk_creator(resources)
        batch: list[tuple[int, int, int, str]] = []

        def flush() -> None:
            write_messages(batch)
            search.add_missing(guild_id, [SearchDocument(
                message_id=message_id, guild_id=guild_id, channel_id=channel_id, author_id=author_id,
                author_type=AuthorType.BOT if author_id in bots else AuthorType.USER, text=index_text(content))
                for channel_id, message_id, author_id, content in batch], owner="bench", channel_cursor=0,
                message_cursor=0)
            batch.clear()

        for n, line in enumerate(_lines(size, words)):
            batch.append((channels[n % CHANNELS], snowflake_from_ms(now_ms - n * spacing_ms) + n % 4096,
                          authors[(n * 7919) % AUTHORS], line))
            if len(batch) == 10_000:
                flush()
                print(f"  {n + 1:,} messages", flush=True)
        if batch:
            flush()
        search.finish_reindex(guild_id)
        return Dataset(database_url=settings.database_url, search_path=settings.search_sqlite_path,
                       guild_id=guild_id, channels=channels, authors=authors, tokens=[r.token for r in readers],
                       words=words, size=size, build_seconds=time.monotonic() - started)
    finally:
        resources.close()


def _lag_buckets(host: str, port: int) -> dict[float, float]:
    connection = http.client.HTTPConnection(host, port, timeout=60)
    try:
        connection.request("GET", "/metrics")
        body = connection.getresponse().read().decode()
    finally:
        connection.close()
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == f"{LAG_METRIC}_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return buckets


def _quantile_bound(before: dict[float, float], after: dict[float, float], quantile: float) -> float | None:
    """The upper bound of the bucket holding the quantile of the observations made between the two scrapes."""
    counts = sorted((bound, after.get(bound, 0.0) - before.get(bound, 0.0)) for bound in after)
    total = counts[-1][1] if counts else 0
    if not total:
        return None
    return next(bound for bound, cumulative in counts if cumulative >= quantile * total)


def measure(dataset: Dataset, args) -> list[dict]:
    rng = random.Random(5)
    queries = {
        "history": [f"/api/v10/channels/{c}/messages?limit=25" for c in dataset.channels],
        "content": [f"/api/v10/guilds/{dataset.guild_id}/messages/search?content={dataset.words[rank]}"
                    for rank in rng.sample(list(QUERY_RANKS), QUERIES)],
        "author": [f"/api/v10/guilds/{dataset.guild_id}/messages/search?author_id={a}"
                   for a in rng.sample(dataset.authors, QUERIES)],
    }
    rows = []
    environment = {"DATABASE_URL": dataset.database_url, "SEARCH_SQLITE_PATH": dataset.search_path,
                   "WEB_WORKERS": str(args.workers), "RATE_LIMIT_ENABLED": "false", "LOG_LEVEL": "WARNING"}
    with tempfile.NamedTemporaryFile(prefix="bench-search-", suffix=".log", delete=False) as log:
        log_path = Path(log.name)
    with serve("wsgi:application", environment, log_path, ready_path="/api/v10/users/@me") as server:
        wait_for_workers(server, args.workers)
        for name, paths in queries.items():
            load = {"BENCH_PATHS": ",".join(paths), "BENCH_TOKENS": ",".join(dataset.tokens)}
            run_wrk(server.url, "get.lua", connections=args.connections, seconds=args.warmup, environment=load)
            cpu = workers_cpu_seconds(server.process.pid)
            result = run_wrk(server.url, "get.lua", connections=args.connections, seconds=args.duration,
                             environment=load)
            cpu = workers_cpu_seconds(server.process.pid) - cpu
            rows.append({"scenario": name, "rps": result.requests_per_second, "p50_ms": result.p50_ms,
                         "p99_ms": result.p99_ms, "errors": result.errors,
                         "cpu_ms_per_request": 1000 * cpu / max(result.requests, 1)})
        before = _lag_buckets(server.host, server.port)
        result = run_wrk(server.url, "create.lua", connections=args.connections, seconds=args.duration,
                         environment={"BENCH_CHANNELS": ",".join(map(str, dataset.channels)),
                                      "BENCH_TOKENS": ",".join(dataset.tokens)})
        # Every acknowledged write of the run must have been indexed (observed once) before the lag is read.
        written = result.requests - result.errors
        deadline = time.monotonic() + 120
        while (after := _lag_buckets(server.host, server.port)) and \
                max(after.values()) - max(before.values(), default=0) < written and time.monotonic() < deadline:
            time.sleep(0.2)
        rows.append({"scenario": "create", "rps": result.requests_per_second, "p50_ms": result.p50_ms,
                     "p99_ms": result.p99_ms, "errors": result.errors,
                     "lag_p50_s_at_most": _quantile_bound(before, after, 0.5),
                     "lag_p99_s_at_most": _quantile_bound(before, after, 0.99),
                     "indexed": (max(after.values()) - max(before.values())) if after else 0})
    baseline = rows[0]["rps"]
    for row in rows:
        row["ratio_to_history"] = row["rps"] / baseline if baseline else None
    return rows


def reindex_rate(dataset: Dataset, size: int) -> dict:
    """Rebuild rate through Reindexer against the engine taking the same documents directly."""
    from app.extensions import Resources
    from app.ids import snowflake_from_ms
    from app.search.documents import document_of
    from app.search.reindex import Reindexer, stored_message_object
    from tests.support.factories import Factory

    resources = Resources(_settings(dataset.database_url, dataset.search_path))
    try:
        factory = Factory(resources)
        owner = factory.actor(f"reindexer-{time.time_ns()}")
        guild_id, channel_id = factory.guild(owner, "reindex benchmark")
        now_ms = int(time.time() * 1000)
        entries = [(channel_id, snowflake_from_ms(now_ms - n * 1000) + n % 4096, owner.id, line)
                   for n, line in enumerate(_lines(size, _vocabulary()))]
        _bulk_creator(resources)(entries)
        search = resources.search_engine
        started = time.monotonic()
        Reindexer(search, resources.engine, resources.message_store, owner="bench").reindex(guild_id, restart=True)
        through_reindexer = size / (time.monotonic() - started)

        messages = []
        before = None
        while page := resources.message_store.list_messages(channel_id, before=before, limit=500):
            messages.extend(page)
            before = page[-1].id
        documents = [document_of(guild_id, stored_message_object(m, False)) for m in messages]
        search.begin_reindex(guild_id, "bench")
        started = time.monotonic()
        for start in range(0, len(documents), 500):
            search.add_missing(guild_id, documents[start:start + 500], owner="bench", channel_cursor=channel_id,
                               message_cursor=documents[start].message_id)
        direct = size / (time.monotonic() - started)
        search.finish_reindex(guild_id)
        return {"messages": size, "reindex_per_second": through_reindexer, "engine_direct_per_second": direct,
                "ratio": through_reindexer / direct}
    finally:
        resources.close()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--size", type=int, default=1_000_000, help="messages in the searched guild")
    parser.add_argument("--reindex-size", type=int, default=50_000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--fresh", action="store_true", help="rebuild the cached datasets")
    parser.add_argument("--drop", action="store_true", help="delete the cached datasets and exit")
    args = parser.parse_args(argv)
    backends = [b for b in args.backends.split(",") if b]
    if args.drop:
        for backend in backends:
            _drop(backend, args.size)
        return
    report = {}
    for backend in backends:
        started = time.monotonic()
        dataset = build(backend, args.size, args.fresh)
        print(f"{backend}: dataset of {dataset.size:,} messages ready in {time.monotonic() - started:.0f} s "
              f"(built in {dataset.build_seconds:.0f} s)", flush=True)
        rows = measure(dataset, args)
        rebuild = reindex_rate(dataset, args.reindex_size)
        report[backend] = {"rows": rows, "reindex": rebuild}
        print(f"\n### {backend}, {dataset.size:,} messages, {args.connections} connections, {args.workers} workers\n")
        print("| scenario | req/s | x history | p50 ms | p99 ms | CPU ms/req | errors | lag p50 | lag p99 |")
        print("|---|---|---|---|---|---|---|---|---|")
        for row in rows:
            lag50, lag99 = row.get("lag_p50_s_at_most"), row.get("lag_p99_s_at_most")
            print(f"| {row['scenario']} | {row['rps']:.0f} | {row['ratio_to_history']:.2f} | {row['p50_ms']:.1f} | "
                  f"{row['p99_ms']:.1f} | {row.get('cpu_ms_per_request', 0):.1f} | {row['errors']} | "
                  f"{'' if lag50 is None else f'<= {lag50} s'} | {'' if lag99 is None else f'<= {lag99} s'} |")
        print(f"\nreindex: {rebuild['reindex_per_second']:.0f} msg/s through the reindexer, "
              f"{rebuild['engine_direct_per_second']:.0f} msg/s into the engine directly "
              f"(x {rebuild['ratio']:.2f}), {rebuild['messages']:,} messages\n", flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
