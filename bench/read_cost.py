"""What the reads of every request cost on PostgreSQL: CPU microseconds per read, in this process and in the
server's backend that answers it.

    .venv/bin/python -m gevent.monkey --module bench.read_cost [--reads 2000] [--rounds 3]

The reads are the read cache's version read (models.base.read_one_row, on every request) and the SQL store's
reads of an uncached page of 50 (the page, then its reactions), each through the engine the service builds
(app.extensions.create_db_engine, under gevent: psycopg2 waits through the hub), one greenlet, one pooled
connection, on a fresh migrated database. The figure is the round with the least process CPU time (not wall
time); the backend's CPU comes from /proc, so the server must be local.
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text

from app.extensions import create_db_engine
from app.messages.base import Message
from app.messages.sql import SqlMessageStore
from app.read_cache import _READ_BOTH_VERSIONS
from bench.probes import process_cpu_seconds
from models.base import read_one_row
from tests.support.databases import migrated_database

CHANNEL = 7
PAGE = 50
FIRST_ID = 1 << 40


def cost_per_read(read: Callable[[], object], reads: int, backend_pid: int) -> tuple[float, float]:
    """(process CPU, backend CPU) microseconds per read over ``reads`` reads."""
    started, backend_started = time.process_time(), process_cpu_seconds(backend_pid)
    for _ in range(reads):
        read()
    return ((time.process_time() - started) / reads * 1e6,
            (process_cpu_seconds(backend_pid) - backend_started) / reads * 1e6)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory, migrated_database("postgres", Path(directory)) as settings:
        engine = create_db_engine(dataclasses.replace(settings, db_pool_size=1))
        try:
            store = SqlMessageStore(engine)
            ids = [FIRST_ID + n for n in range(PAGE)]
            for message_id in ids:
                store.create_message(Message(id=message_id, channel_id=CHANNEL, author_id=1, content="x" * 40))
            with engine.connect() as connection:
                backend_pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
            reads = {
                "version read": lambda: read_one_row(engine, _READ_BOTH_VERSIONS, {"channel_id": CHANNEL}),
                f"page of {PAGE}": lambda: store.list_messages(CHANNEL, limit=PAGE),
                f"reactions of {PAGE}": lambda: store.reaction_counts(CHANNEL, ids, 1),
            }
            print(f"{'read':<16} {'worker CPU us':>14} {'PostgreSQL CPU us':>18}")
            for name, read in reads.items():
                for _ in range(args.reads // 10):
                    read()
                worker, backend = min(cost_per_read(read, args.reads, backend_pid) for _ in range(args.rounds))
                print(f"{name:<16} {worker:>14.0f} {backend:>18.0f}")
        finally:
            engine.dispose()


if __name__ == "__main__":
    main()
