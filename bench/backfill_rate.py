"""Backfill rate against the target store's own write rate, measured in the same run.

    .venv/bin/python -m gevent.monkey --module bench.backfill_rate [--messages 3000] [--concurrency 4]

Seeds a SQLite source with back-dated history over many channels, then on three fresh CQL test nodes
(127.0.0.70-72, through the real driver with the production options) measures:
- baseline: the same messages written straight into the Scylla store by the same number of greenlets;
- backfill: `Backfill` copying them from the SQL store (reads, writes, write-log checks, checkpointing).
Prints messages per second for both and their ratio.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from gevent.pool import Pool

from app.extensions import create_db_engine
from app.ids import snowflake_from_ms
from app.messages.base import Message
from app.messages.dual import WriteLog
from app.messages.migration import Backfill, Checkpoint
from app.messages.scylla import ScyllaMessageStore
from app.messages.sql import SqlMessageStore
from tests.scylla.stores import TABLES, apply_migrations, settings_for
from tests.support.cqlnode import CqlTestCluster
from tests.support.databases import migrated_database

DAY_MS = 24 * 3600 * 1000


def history(messages: int, channels: int) -> dict[int, list[Message]]:
    now_ms = int(datetime.now(timezone.utc).timestamp() * 1000)
    per_channel: dict[int, list[Message]] = {}
    for i in range(messages):
        channel_id = 1000 + i % channels
        message = Message(id=snowflake_from_ms(now_ms - (messages - i) * DAY_MS // 20) + i, channel_id=channel_id,
                          author_id=7, content=f"history message {i} " + "x" * 80)
        per_channel.setdefault(channel_id, []).append(message)
    return per_channel


def truncate(store: ScyllaMessageStore, keyspace: str) -> None:
    for table in TABLES:
        store.session.execute(f"TRUNCATE {keyspace}.{table}", timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    per_channel = history(args.messages, args.channels)

    with tempfile.TemporaryDirectory() as directory, migrated_database("sqlite", Path(directory)) as sql_settings, \
            CqlTestCluster(nodes=3, first_address=70) as nodes:
        engine = create_db_engine(sql_settings)
        source = SqlMessageStore(engine)
        for messages in per_channel.values():
            for message in messages:
                source.create_message(message)
        scylla_settings = settings_for(nodes.contact_points, nodes.port)
        apply_migrations(scylla_settings)
        target = ScyllaMessageStore(scylla_settings)

        pool = Pool(args.concurrency)
        started = time.perf_counter()
        for messages in per_channel.values():
            pool.spawn(lambda batch: [target.create_message(m) for m in batch], messages)
        pool.join(raise_error=True)
        direct = args.messages / (time.perf_counter() - started)

        truncate(target, scylla_settings.scylla_keyspace)
        checkpoint = Checkpoint(Path(directory) / "progress.sqlite3")
        result = Backfill(source, target, WriteLog(engine, stale_writer_seconds=60), checkpoint,
                          concurrency=args.concurrency).run(list(per_channel))
        assert result.copied == args.messages, result
        target.close()
        engine.dispose()

    print(f"messages: {args.messages} in {args.channels} channels, concurrency {args.concurrency}")
    print(f"direct writes into the Scylla store (baseline): {direct:8.0f} msg/s")
    print(f"backfill from SQL into the Scylla store:        {result.rate:8.0f} msg/s")
    print(f"backfill / direct: {result.rate / direct:.2f}")


if __name__ == "__main__":
    main()
