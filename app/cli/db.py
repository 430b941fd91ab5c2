"""``flask db``: Alembic migrations of the SQL schema."""
from __future__ import annotations

from pathlib import Path

import click
from alembic import command
from alembic.config import Config

from app.cli import CommandGroup, resources

db_cli = CommandGroup("db", help="Migrate the SQL database (Alembic).")
ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def alembic_config(connection=None) -> Config:
    config = Config(str(ALEMBIC_INI))
    config.attributes["configure_logging"] = False
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine, revision: str = "head") -> None:
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def upgrade_command(revision: str) -> None:
    """Upgrade the database to REVISION (default: head)."""
    upgrade(resources().engine, revision)
    click.echo(f"database at {revision}", err=True)


@db_cli.command("downgrade")
@click.argument("revision")
def downgrade_command(revision: str) -> None:
    """Downgrade the database to REVISION (e.g. -1, base)."""
    with resources().engine.begin() as connection:
        command.downgrade(alembic_config(connection), revision)


@db_cli.command("current")
def current_command() -> None:
    """Show the revision the database is at."""
    with resources().engine.begin() as connection:
        command.current(alembic_config(connection))
