"""``flask scylla``: the ScyllaDB schema, from the versioned files ``migrations/cql/NNNN_slug.cql``.

``migrate`` applies the files not yet recorded in ``<keyspace>.schema_migrations``, in order, one statement at a
time, waiting for every node to agree on the schema after each. Statements are ``IF NOT EXISTS``, so a run
interrupted between a statement and its record is safe to repeat. Run it from one place at a time: concurrent
schema changes are what ScyllaDB handles worst.

``index-authors`` completes what CQL 0005 cannot: messages written before it have no ``guild_id`` and no
author-index entries, so a ban's purge would not find them. It walks the last days of every guild channel (the
longest purge window by default) and indexes them; idempotent, so it may be rerun or interrupted.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click
from flask import current_app
from sqlalchemy import select

from app.cli import CommandGroup, resources
from app.ids import snowflake_from_ms
from app.messages.base import StoreUnavailable
from config import Settings
from models import Channel

scylla_cli = CommandGroup("scylla", help="Manage the ScyllaDB message store schema.")

MIGRATIONS_DIRECTORY = Path(__file__).resolve().parents[2] / "migrations" / "cql"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.cql$")
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")
#: Schema changes take longer than queries, and a cluster may need a while to agree on them.
DDL_TIMEOUT_SECONDS = 60.0
SCHEMA_AGREEMENT_SECONDS = 60.0


class MigrationError(click.ClickException):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    def statements(self, settings: Settings) -> list[str]:
        """The file's statements with the settings substituted (keyspace, datacenter, replication factor)."""
        for label, value in (("SCYLLA_KEYSPACE", settings.scylla_keyspace),
                             ("SCYLLA_LOCAL_DC", settings.scylla_local_dc)):
            if not _IDENTIFIER.match(value):
                raise MigrationError(f"{label}={value!r} is not a plain CQL identifier")
        text = string.Template(self.path.read_text()).substitute(
            keyspace=settings.scylla_keyspace, local_dc=settings.scylla_local_dc,
            replication_factor=settings.scylla_replication_factor)
        return split_statements(text)


def split_statements(text: str) -> list[str]:
    """Split CQL on the semicolons outside string literals, dropping ``--`` comments."""
    statements, current, quoted = [], [], False
    for line in text.splitlines():
        if not quoted and line.lstrip().startswith("--"):
            continue
        for char in line:
            if char == "'":
                quoted = not quoted
            if char == ";" and not quoted:
                statements.append("".join(current).strip())
                current = []
            else:
                current.append(char)
        current.append("\n")
    tail = "".join(current).strip()
    if tail:
        raise MigrationError(f"statement without a closing semicolon: {tail[:60]!r}")
    return [s for s in statements if s]


def find_migrations(directory: Path = MIGRATIONS_DIRECTORY) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.cql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_slug.cql")
        migrations.append(Migration(int(match.group(1)), match.group(2), path))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    return migrations


def applied_versions(session, keyspace: str) -> set[int]:
    """Versions recorded as applied; none before the first migration has created the record table."""
    keyspace_metadata = session.cluster.metadata.keyspaces.get(keyspace)
    if keyspace_metadata is None or "schema_migrations" not in keyspace_metadata.tables:
        return set()
    rows = session.execute(f"SELECT version FROM {keyspace}.schema_migrations", timeout=DDL_TIMEOUT_SECONDS)
    return {row.version for row in rows}


def migrate(session, settings: Settings, migrations: list[Migration], echo=click.echo) -> list[Migration]:
    """Apply the migrations not yet recorded; returns those applied now."""
    keyspace = settings.scylla_keyspace
    done = applied_versions(session, keyspace)
    applied = []
    for migration in migrations:
        if migration.version in done:
            continue
        for statement in migration.statements(settings):
            result = session.execute(statement, timeout=DDL_TIMEOUT_SECONDS)
            if not result.response_future.is_schema_agreed:
                _wait_for_schema_agreement(session)
        session.execute(
            session.prepare(f"INSERT INTO {keyspace}.schema_migrations (version, name, applied_at) VALUES (?, ?, ?)"),
            (migration.version, migration.name, datetime.now(timezone.utc)), timeout=DDL_TIMEOUT_SECONDS)
        echo(f"applied {migration.path.name}")
        applied.append(migration)
    _wait_for_schema_agreement(session)
    return applied


def _wait_for_schema_agreement(session) -> None:
    if not session.cluster.control_connection.wait_for_schema_agreement(wait_time=SCHEMA_AGREEMENT_SECONDS):
        raise MigrationError(f"the nodes did not agree on the schema within {SCHEMA_AGREEMENT_SECONDS:.0f}s; "
                             "check the cluster, then run migrate again")


def migration_cluster(settings: Settings):
    """A driver Cluster for this command. Under gevent (a worker, the test suite) it is the cooperative one the
    store uses; a plain ``flask`` process has no gevent hub to run it, so it uses the driver's asyncio reactor."""
    from cassandra.io.asyncioreactor import AsyncioConnection
    from gevent import monkey

    from app.messages.scylla import build_cluster

    if monkey.is_module_patched("socket"):
        return build_cluster(settings)
    return build_cluster(settings, connection_class=AsyncioConnection)


@scylla_cli.command("migrate")
def migrate_command() -> None:
    """Apply the CQL migrations not yet applied, and wait for schema agreement."""
    from cassandra import DriverException
    from cassandra.cluster import NoHostAvailable
    from cassandra.connection import ConnectionException

    settings: Settings = current_app.config["SETTINGS"]
    if not settings.scylla_hosts:
        raise MigrationError("SCYLLA_HOSTS is not set")
    cluster = migration_cluster(settings)
    try:
        session = cluster.connect()
        applied = migrate(session, settings, find_migrations())
    except (DriverException, NoHostAvailable, ConnectionException) as exc:
        raise MigrationError(f"migration failed: {exc}") from exc
    finally:
        cluster.shutdown()
    click.echo(f"{len(applied)} migration(s) applied; schema up to date", err=True)


#: A ban's purge reaches back at most 7 days (app.services.moderation.MAX_DELETE_MESSAGE_SECONDS).
INDEX_AUTHORS_DAYS = 7
#: Channels between two progress lines.
INDEX_PROGRESS_EVERY = 100


@scylla_cli.command("index-authors")
@click.option("--days", type=click.IntRange(min=1), default=INDEX_AUTHORS_DAYS, show_default=True,
              help="How far back to index (a ban's purge reaches back 7 days).")
def index_authors_command(days: int) -> None:
    """Index the messages written before CQL 0005 (guild and author index) so that bans purge them."""
    res = resources()
    since = snowflake_from_ms(int((datetime.now(timezone.utc) - timedelta(days=days)).timestamp() * 1000))
    with res.session() as session:
        channels = session.execute(select(Channel.id, Channel.guild_id).where(Channel.guild_id.is_not(None))
                                   .order_by(Channel.id)).all()
    indexed = 0
    for number, (channel_id, guild_id) in enumerate(channels, start=1):
        try:
            indexed += res.message_store.index_authors(channel_id, guild_id, since=since)
        except StoreUnavailable as exc:
            raise click.ClickException(f"channel {channel_id}: {exc}; {indexed} messages indexed so far, run the "
                                       "command again to finish (it skips what is done)") from exc
        if number % INDEX_PROGRESS_EVERY == 0 or number == len(channels):
            click.echo(f"{number}/{len(channels)} channels, {indexed} messages indexed", err=True)
    click.echo(f"indexed {indexed} messages of the last {days} days in {len(channels)} channels", err=True)
