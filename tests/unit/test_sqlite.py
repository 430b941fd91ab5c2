"""The SQLite policy as a connection of the engine really has it."""
from __future__ import annotations

import pytest

from app.extensions import create_db_engine
from app.sqlite import BUSY_TIMEOUT_MS
from config import Settings


@pytest.fixture
def engine(tmp_path):
    engine = create_db_engine(Settings(database_url=f"sqlite:///{tmp_path / 'nested' / 'db.sqlite3'}"))
    yield engine
    engine.dispose()


def test_the_busy_timeout_in_effect_is_the_one_millisecond_set(engine):
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == BUSY_TIMEOUT_MS == 1


def test_connections_are_in_wal_mode_with_foreign_keys(engine, tmp_path):
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
    assert (tmp_path / "nested" / "db.sqlite3").exists()
