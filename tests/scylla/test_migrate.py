"""``flask scylla migrate``: applies the CQL files once, records them, waits for agreement, reruns safely."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app import create_app
from app.cli.scylla import MigrationError, find_migrations, split_statements
from config import Settings
from tests.support.cqlnode import CqlTestCluster

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def nodes():
    with CqlTestCluster(nodes=3, first_address=60) as cluster:
        yield cluster


def settings(nodes, **overrides) -> Settings:
    return Settings(message_store="scylla", scylla_hosts=tuple(nodes.contact_points), scylla_port=nodes.port,
                    scylla_keyspace="migrated", **overrides)


def test_migrate_creates_the_schema_records_it_and_reruns_as_a_no_op(nodes):
    runner = create_app(settings(nodes, scylla_replication_factor=2)).test_cli_runner()
    first = runner.invoke(args=["scylla", "migrate"])
    assert first.exit_code == 0, first.output
    assert "applied 0001_keyspace.cql" in first.output and "applied 0002_messages.cql" in first.output
    keyspace = nodes.dataset.keyspaces["migrated"]
    assert keyspace.replication == {"class": "NetworkTopologyStrategy", "datacenter1": "2"}
    assert {"messages", "channel_buckets", "reactions", "pins", "nonces", "schema_migrations"} <= set(keyspace.tables)
    assert keyspace.tables["messages"].descending == {"message_id"}
    recorded = nodes.dataset.data[("migrated", "schema_migrations")]
    assert sorted(key for key in recorded) == [(m.version,) for m in find_migrations()]
    again = runner.invoke(args=["scylla", "migrate"])
    assert again.exit_code == 0 and "applied" not in again.output.replace("0 migration(s) applied", "")


def test_migrate_fails_in_one_line_when_no_node_answers(nodes):
    nodes.stop()
    runner = create_app(settings(nodes, scylla_connect_timeout=1.0)).test_cli_runner()
    result = runner.invoke(args=["scylla", "migrate"])
    assert result.exit_code == 1
    assert "migration failed" in result.output


def test_migrate_runs_from_a_plain_flask_process_without_gevent(nodes):
    """The operator's ``flask scylla migrate`` is not gevent-patched; it uses the driver's asyncio reactor."""
    environment = {**os.environ, "MESSAGE_STORE": "scylla", "SCYLLA_HOSTS": ",".join(nodes.contact_points),
                   "SCYLLA_PORT": str(nodes.port), "SCYLLA_KEYSPACE": "plain", "SCYLLA_REPLICATION_FACTOR": "3"}
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "scylla", "migrate"], cwd=PROJECT_ROOT,
                            env=environment, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "plain" in nodes.dataset.keyspaces


def test_statements_split_on_semicolons_outside_strings_and_comments():
    text = ("-- a comment; with a semicolon\nCREATE KEYSPACE k WITH replication = {'a;b': 1};\n"
            "CREATE TABLE t (a int PRIMARY KEY);\n")
    assert split_statements(text) == ["CREATE KEYSPACE k WITH replication = {'a;b': 1}",
                                      "CREATE TABLE t (a int PRIMARY KEY)"]
    with pytest.raises(MigrationError):
        split_statements("CREATE TABLE t (a int PRIMARY KEY)")
