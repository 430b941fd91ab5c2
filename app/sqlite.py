"""SQLite's policy, in one place: how an engine on the embedded database connects, begins and waits.

A busy SQLite database makes the driver sleep inside C, which would block the gevent hub. So:

- each process keeps one connection (greenlets queue for it cooperatively in the pool);
- the connection is in WAL mode, so readers never wait for a writer;
- a transaction marked read-only (``models.base.READ_ONLY``) begins DEFERRED: it takes no lock and never waits
  for the other workers;
- every other transaction begins IMMEDIATE, so a read-then-write transaction never fails on a lock upgrade,
  and waits for another process's write lock here, cooperatively, rather than inside SQLite.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError

from models.base import READ_ONLY_OPTION

#: SQLite's own busy timeout, the only one set (``sqlite3.connect``'s ``timeout``). While SQLite waits for a
#: lock it sleeps in C with the hub stopped, so it is allowed 1 ms: the cooperative wait below does the rest.
BUSY_TIMEOUT_MS = 1
#: How long a transaction waits for the write lock in all, cooperatively.
LOCK_TIMEOUT_SECONDS = 5.0
RETRY_FIRST_PAUSE_SECONDS = 0.0005
RETRY_MAX_PAUSE_SECONDS = 0.01
PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON")


def create_sqlite_engine(url: str, **options: Any) -> Engine:
    """An engine on the SQLite database at ``url`` under this policy, creating the file's folder if need be.

    ``options`` go to :func:`sqlalchemy.create_engine` (pool class, pool timeout, ...); the pool size and the
    connection arguments are this module's.
    """
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_size=1, max_overflow=0,
                           connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000}, **options)
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)
    return engine


def _on_connect(dbapi_connection, _record) -> None:
    # The driver's own transaction handling off: _on_begin says how each transaction begins.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in PRAGMAS:
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _on_begin(connection) -> None:
    if connection.get_execution_options().get(READ_ONLY_OPTION):
        connection.exec_driver_sql("BEGIN")
        return
    deadline = time.monotonic() + LOCK_TIMEOUT_SECONDS
    pause = RETRY_FIRST_PAUSE_SECONDS
    while True:
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            return
        except OperationalError as error:
            if "locked" not in str(error.orig) or time.monotonic() + pause > deadline:
                raise
        # time.sleep is gevent's once patched: the other greenlets run while this one waits.
        time.sleep(pause)
        pause = min(pause * 2, RETRY_MAX_PAUSE_SECONDS)
