"""Alembic revisions: one head, a full round trip on fresh databases, and models that match the migrated schema."""
from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect

import app.messages.dual_tables  # noqa: F401  (the backends' tables join models.Base.metadata on import)
import app.messages.sql_tables  # noqa: F401
import app.search.postgres_tables  # noqa: F401
import models
from app.cli.db import alembic_config
from tests.support.databases import postgres_database, sqlite_database


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_engine(request, tmp_path):
    """An engine on a new, empty database of each backend (never the suite's shared one)."""
    opener = postgres_database() if request.param == "postgres" else sqlite_database(tmp_path)
    with opener as url:
        engine = create_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


def test_there_is_exactly_one_head():
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1, f"several heads, merge them: {heads}"


def migrate(engine, direction: str, revision: str) -> None:
    with engine.begin() as connection:
        getattr(command, direction)(alembic_config(connection), revision)


def schema_differences(engine) -> list:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, models.Base.metadata)


def application_tables(engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_upgrade_downgrade_upgrade_round_trip(fresh_engine):
    model_tables = set(models.Base.metadata.tables)
    migrate(fresh_engine, "upgrade", "head")
    assert application_tables(fresh_engine) == model_tables
    migrate(fresh_engine, "downgrade", "base")
    assert application_tables(fresh_engine) == set()
    migrate(fresh_engine, "upgrade", "head")
    assert application_tables(fresh_engine) == model_tables


def test_autogenerate_against_the_models_finds_nothing_to_do(fresh_engine):
    migrate(fresh_engine, "upgrade", "head")
    assert schema_differences(fresh_engine) == []


def test_every_revision_downgrades_one_step_at_a_time(fresh_engine):
    """Each revision's downgrade works from its own upgrade, not only as part of a full downgrade to base."""
    script = ScriptDirectory.from_config(alembic_config())
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    for revision in revisions:
        migrate(fresh_engine, "upgrade", revision)
        migrate(fresh_engine, "downgrade", "-1")
        migrate(fresh_engine, "upgrade", revision)
    assert schema_differences(fresh_engine) == []
