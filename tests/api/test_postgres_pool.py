"""The PostgreSQL pool checks a connection before use only after it sat idle (app.extensions._ping_when_idle): a
connection in steady use costs no extra round trip, and one the server closed while it was idle is replaced
without the request seeing an error. Under more concurrent requests than it holds, it keeps what it opened."""
from __future__ import annotations

import gevent
import pytest
from sqlalchemy import create_engine, event, text

from app import extensions
from app.extensions import create_db_engine
from config import Settings
from tests.support.databases import POSTGRES_ADMIN_URL, require_postgres


@pytest.fixture
def engine():
    require_postgres()
    engine = create_db_engine(Settings(database_url=POSTGRES_ADMIN_URL, db_pool_size=1))
    yield engine
    engine.dispose()


def _backend_pid(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT pg_backend_pid()")).scalar()


def test_a_connection_in_use_is_not_pinged(engine, monkeypatch):
    pings = []
    original = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda connection: pings.append(1) or original(connection))
    _backend_pid(engine)
    for _ in range(5):
        _backend_pid(engine)
    assert pings == []


def test_a_connection_the_server_closed_while_idle_is_replaced(engine, monkeypatch):
    first = _backend_pid(engine)
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as other:
            assert other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first}).scalar()
    finally:
        admin.dispose()
    # The connection is now "idle" long enough: the next checkout checks it, finds it dead, and opens another.
    monkeypatch.setattr(extensions, "PING_AFTER_IDLE_SECONDS", 0.0)
    second = _backend_pid(engine)
    assert second != first
    assert _backend_pid(engine) == second


def test_under_more_concurrent_requests_than_connections_the_pool_keeps_every_connection_it_opens(engine):
    """Twice DB_POOL_SIZE (here 2), opened once: closing what went beyond a smaller pool on every return made a
    busy worker connect and disconnect all the time."""
    opened = []
    event.listen(engine, "connect", lambda *_: opened.append(1))

    def requests():
        for _ in range(5):
            with engine.connect() as connection:
                connection.execute(text("SELECT pg_sleep(0.01)"))

    gevent.joinall([gevent.spawn(requests) for _ in range(6)], raise_error=True)
    assert len(opened) == 2
    assert engine.pool.checkedin() == 2
