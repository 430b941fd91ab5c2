"""`flask messages migrate | verify --repair | replay` copy in the dual store's direction (DUAL_PRIMARY to
DUAL_SECONDARY) and refuse to run without a dual store.

At runbook step 4 (DUAL_PRIMARY=scylla) a write that reached ScyllaDB but not SQL is acknowledged: the commands
must copy it to SQL, never SQL's state (no such message) over it."""
from __future__ import annotations

import pytest

from app import create_app
from app.extensions import create_db_engine
from app.ids import SnowflakeGenerator
from app.messages.base import Message
from app.messages.dual import WriteLog
from app.messages.sql import SqlMessageStore
from tests.scylla import stores as scylla_stores
from tests.support.databases import migrated_database
from tests.support.factories import Factory


@pytest.fixture
def step_four(tmp_path):
    """Settings of runbook step 4 on SQLite and the shared CQL test nodes, a channel, and both stores."""
    with scylla_stores.test_node_store() as scylla, migrated_database("sqlite", tmp_path) as settings:
        settings = settings.replace(message_store="dual", dual_primary="scylla", dual_secondary="sql",
                                    scylla_hosts=scylla.settings.scylla_hosts,
                                    scylla_port=scylla.settings.scylla_port,
                                    scylla_keyspace=scylla.settings.scylla_keyspace)
        app = create_app(settings)
        resources = app.extensions["chatstore"]
        bot = Factory(resources).actor("direction-bot")
        _guild_id, channel_id = Factory(resources).guild(bot)
        engine = create_db_engine(settings)
        try:
            yield app, channel_id, scylla, SqlMessageStore(engine), WriteLog(engine, stale_writer_seconds=60)
        finally:
            engine.dispose()
            resources.close()


def run(app, *args: str, **overrides):
    if overrides:
        other = create_app(app.extensions["chatstore"].settings.replace(**overrides))
        try:
            return run(other, *args)
        finally:
            other.extensions["chatstore"].close()
    # The `flask` command pushes an application context (FlaskGroup); the test runner does not.
    with app.app_context():
        return app.test_cli_runner().invoke(args=["messages", *args])


def only_in_primary(channel_id: int, scylla, write_log: WriteLog, *, logged: bool) -> Message:
    """A message as a dual write leaves it when the SQL secondary failed: in ScyllaDB only, pending if the write
    log could record it (SQL was down for the log too when ``logged`` is False)."""
    message = Message(id=SnowflakeGenerator(7).next_id(), channel_id=channel_id, author_id=1, content="acked")
    if logged:
        versions = write_log.begin(channel_id, [message.id])
    scylla.create_message(message)
    if logged:
        write_log.end(channel_id, versions, reached_secondary=False)
    return message


def test_verify_repair_at_step_four_copies_scylla_over_sql(step_four):
    app, channel_id, scylla, sql, write_log = step_four
    message = only_in_primary(channel_id, scylla, write_log, logged=False)

    result = run(app, "verify", "--repair")

    assert result.exit_code == 0, result.output
    assert scylla.get_message(channel_id, message.id) is not None, "the acknowledged message was deleted"
    assert sql.get_message(channel_id, message.id).content == "acked"
    assert run(app, "verify").output.strip() == "no differences"


def test_replay_at_step_four_copies_scylla_to_sql(step_four):
    app, channel_id, scylla, sql, write_log = step_four
    message = only_in_primary(channel_id, scylla, write_log, logged=True)

    result = run(app, "replay")

    assert result.exit_code == 0, result.output
    assert "replayed 1 pending dual writes from scylla to sql" in result.output
    assert scylla.get_message(channel_id, message.id) is not None, "the acknowledged message was deleted"
    assert sql.get_message(channel_id, message.id).content == "acked"


def test_migrate_at_step_four_copies_scylla_to_sql(step_four, tmp_path):
    app, channel_id, scylla, sql, write_log = step_four
    message = only_in_primary(channel_id, scylla, write_log, logged=False)

    result = run(app, "migrate", "--to", "sql", "--checkpoint", str(tmp_path / "back.sqlite3"))

    assert result.exit_code == 0, result.output
    assert "from scylla to sql" in result.output
    assert sql.get_message(channel_id, message.id).content == "acked"
    assert scylla.get_message(channel_id, message.id) is not None


def test_migrate_refuses_a_destination_that_is_not_the_secondary(step_four, tmp_path):
    app, channel_id, scylla, sql, write_log = step_four
    message = only_in_primary(channel_id, scylla, write_log, logged=False)

    result = run(app, "migrate", "--to", "scylla", "--checkpoint", str(tmp_path / "wrong.sqlite3"))

    assert result.exit_code == 1
    assert "DUAL_SECONDARY is 'sql'" in result.output
    assert scylla.get_message(channel_id, message.id) is not None


@pytest.mark.parametrize("command", [("verify",), ("verify", "--repair"), ("replay",), ("migrate", "--to", "scylla")])
@pytest.mark.parametrize("message_store", ["sql", "scylla"])
def test_the_commands_refuse_to_run_without_a_dual_store(step_four, command, message_store):
    app, channel_id, scylla, sql, write_log = step_four
    message = only_in_primary(channel_id, scylla, write_log, logged=True)

    result = run(app, *command, message_store=message_store)

    assert result.exit_code == 1
    assert f"MESSAGE_STORE is '{message_store}', not 'dual'" in result.output
    assert scylla.get_message(channel_id, message.id) is not None
    assert sql.get_message(channel_id, message.id) is None, "nothing was copied"
