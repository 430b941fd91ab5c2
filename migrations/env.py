"""Alembic environment. Imports config, the metadata models and the message backends' table modules (which
import only SQLAlchemy and models.base), so autogenerate sees every table of ``models.Base.metadata``.

The database comes from ``config.attributes["connection"]`` when a caller (tests, ``flask db``) hands one over,
else from ``DATABASE_URL``. On PostgreSQL every migration runs with a lock timeout and a statement timeout so a
migration waiting behind live traffic fails fast instead of queueing the traffic behind it.
"""
from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, text

import app.messages.dual_tables  # noqa: F401  (registers the dual-write log on the metadata)
import app.messages.sql_tables  # noqa: F401  (registers the SQL message store's tables on the metadata)
import app.search.postgres_tables  # noqa: F401  (registers the PostgreSQL search engine's tables)
import models
from config import load_settings
from models.base import UTCDateTime

alembic_config = context.config
if alembic_config.config_file_name is not None and alembic_config.attributes.get("configure_logging", True):
    fileConfig(alembic_config.config_file_name, disable_existing_loggers=False)

target_metadata = models.Base.metadata


def _render_item(type_, obj, autogen_context):
    """Render the models' UTCDateTime as a plain DateTime so revisions never import model code."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure_and_run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_item=_render_item,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
        transaction_per_migration=True,
    )
    if connection.dialect.name == "postgresql":
        connection.execute(text("SET lock_timeout = '4s'"))
        connection.execute(text("SET statement_timeout = '60s'"))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=load_settings().database_url, target_metadata=target_metadata, literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = alembic_config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    engine = create_engine(load_settings().database_url)
    try:
        with engine.connect() as connection:
            _configure_and_run(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
