"""psycopg2 under gevent: slow PostgreSQL queries in one process overlap instead of queueing on the hub.

Without psycogreen's wait callback a query blocks the whole process inside libpq, so 20 greenlets each sleeping
0.5 s in the database would take 10 s. This uses the production engine factory, which installs the callback.
"""
import time

import gevent
import pytest
from gevent import monkey
from sqlalchemy import text

from app.extensions import create_db_engine
from config import Settings
from tests.support.databases import POSTGRES_ADMIN_URL, require_postgres

QUERIES = 20
SLEEP_SECONDS = 0.5


@pytest.fixture
def engine():
    require_postgres()
    assert monkey.is_module_patched("socket"), "the suite must run gevent-patched, as gunicorn's workers do"
    engine = create_db_engine(Settings(database_url=POSTGRES_ADMIN_URL, db_pool_size=QUERIES))
    yield engine
    engine.dispose()


def run_concurrently(engine, sql: str) -> None:
    def query():
        with engine.connect() as connection:
            connection.execute(text(sql))

    greenlets = [gevent.spawn(query) for _ in range(QUERIES)]
    gevent.joinall(greenlets, raise_error=True)


def test_twenty_slow_queries_overlap_and_the_hub_keeps_running(engine):
    # Open the pool's connections first, so the timing below measures queries, not connection setup.
    run_concurrently(engine, "SELECT 1")
    ticks = []
    ticker = gevent.spawn(lambda: [ticks.append(gevent.sleep(0.05)) for _ in range(1000)])
    try:
        started = time.monotonic()
        run_concurrently(engine, f"SELECT pg_sleep({SLEEP_SECONDS})")
        elapsed = time.monotonic() - started
    finally:
        ticker.kill()
    assert elapsed < 2.5, f"{QUERIES} queries of {SLEEP_SECONDS}s took {elapsed:.2f}s: they ran one after another"
    # A blocked hub would starve the ticker for the whole run; a cooperative one lets it tick every 50 ms.
    assert len(ticks) >= 0.5 * elapsed / 0.05, f"{len(ticks)} ticks in {elapsed:.2f}s: the hub was blocked"
