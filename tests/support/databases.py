"""Throwaway databases for tests: a SQLite file or a fresh PostgreSQL database, migrated to head.

PostgreSQL is required in CI (``CI`` or ``REQUIRE_POSTGRES`` set): there an unreachable server fails the
tests instead of skipping them. Elsewhere the PostgreSQL half is skipped with the reason shown.
"""
from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from config import Settings

POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def postgres_required() -> bool:
    return bool(os.environ.get("CI") or os.environ.get("REQUIRE_POSTGRES"))


def _admin_engine():
    return create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})


def postgres_reachable() -> str | None:
    """None when the server answers, else why not."""
    engine = _admin_engine()
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return None
    except Exception as exc:  # any failure to connect means "not reachable"; the reason is reported
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    finally:
        engine.dispose()


def require_postgres() -> None:
    problem = postgres_reachable()
    if problem is None:
        return
    if postgres_required():
        pytest.fail(f"PostgreSQL is required here but unreachable at {POSTGRES_ADMIN_URL}: {problem}")
    pytest.skip(f"PostgreSQL unreachable at {POSTGRES_ADMIN_URL}: {problem}")


@contextmanager
def postgres_database():
    """A fresh, empty PostgreSQL database; dropped afterwards. Yields its URL."""
    require_postgres()
    name = f"chatstore_test_{os.getpid()}_{secrets.token_hex(4)}"
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def sqlite_database(directory: Path):
    yield f"sqlite:///{directory / 'chatstore.sqlite3'}"


@contextmanager
def migrated_database(backend: str, directory: Path):
    """Yield Settings for a new database of ``backend`` ("sqlite" or "postgres") at the Alembic head."""
    from app.cli.db import upgrade

    opener = postgres_database() if backend == "postgres" else sqlite_database(directory)
    with opener as url:
        engine = create_engine(url)
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        # Suites that send many requests in a burst would meet the production rate limits; tests/security
        # turns them on with its own small limits.
        # Attachments' files go beside the database, never into the checkout's var/.
        yield Settings(database_url=url, db_pool_size=5, rate_limit_enabled=False,
                       blob_directory=str(directory / "attachments"))


def empty_tables(engine) -> None:
    """Delete every row the tests wrote, keeping the schema, the id slot leases of live processes and the
    metadata version (which the deletes bump, so no worker keeps what it read of the deleted rows)."""
    import app.messages.dual_tables  # noqa: F401  (the backends' tables join models.Base.metadata on import)
    import app.messages.sql_tables  # noqa: F401
    import app.search.postgres_tables  # noqa: F401
    import models

    # DELETE, children first, rather than TRUNCATE: on PostgreSQL a TRUNCATE of every table costs about 0.3 s
    # (it rewrites each table's files), a DELETE of the few rows a test wrote about 10 ms.
    kept = ("id_slot_leases", "metadata_version")
    tables = [t for t in reversed(models.Base.metadata.sorted_tables) if t.name not in kept]
    with engine.begin() as conn:
        for table in tables:
            conn.execute(table.delete())


def pooled_driver_connections(engine) -> list:
    """The driver connections idle in the engine's pool, all checked out at once (so none is opened anew) and
    returned: to check what state a transaction left them in."""
    held = [engine.raw_connection() for _ in range(engine.pool.checkedin())]
    try:
        return [connection.driver_connection for connection in held]
    finally:
        for connection in held:
            connection.close()
