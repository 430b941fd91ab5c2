"""The whole move from SQL to ScyllaDB, end to end: real gunicorn with dual writes under live create, edit and
delete traffic while `flask messages migrate` copies the history, is killed, and resumes; then runbook step 4
(reads from ScyllaDB) and back to step 3, each with an outage of the secondary store under traffic. After each
step `replay` and `verify --repair` (run with the service's settings) leave no difference, and every
acknowledged write is in both stores as it was acknowledged."""
from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import gevent
import pytest
from sqlalchemy import create_engine, text

from app import create_app
from app.ids import snowflake_from_ms
from app.messages.base import Message
from app.messages.scylla import ScyllaMessageStore
from app.messages.sql import SqlMessageStore
from config import PROJECT_ROOT, Settings
from tests.support.cqlnode.control import RemoteCluster
from tests.support.databases import migrated_database
from tests.support.factories import Factory
from tests.support.http import JsonClient
from tests.support.server import gunicorn_server, wait_for

FLASK = PROJECT_ROOT / ".venv" / "bin" / "flask"
HISTORY = 600
DAY_MS = 24 * 3600 * 1000
#: DUAL_STALE_WRITER_SECONDS of every process here: a live write of this test is over within seconds (its ScyllaDB
#: calls time out in 2 s, its database calls within the pool's and the lock's waits of 5 s), and settling after an
#: outage waits this long instead of the default minute.
STALE_WRITER_SECONDS = 20


@pytest.fixture
def cql_cluster():
    with RemoteCluster(nodes=3, first_address=60) as nodes:
        yield {"contact_points": nodes.contact_points, "port": nodes.port, "control": nodes}


def flask(env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(FLASK), *args], cwd=PROJECT_ROOT, env={**os.environ, **env}, capture_output=True,
                            text=True, timeout=240)
    if check and result.returncode != 0:
        raise AssertionError(f"flask {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@contextlib.contextmanager
def _log_on_failure(server):
    try:
        yield
    except BaseException:
        print(server.log()[-20_000:])
        raise


def copied_so_far(checkpoint: Path) -> int:
    if not checkpoint.exists():
        return 0
    try:
        with sqlite3.connect(checkpoint) as connection:
            return connection.execute("SELECT COALESCE(SUM(copied), 0) FROM buckets").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


SECONDARY_OUTAGE_SECONDS = 6.0  # longer than SQLite's cooperative lock wait (app/sqlite.py, 5 s)


@contextlib.contextmanager
def scylla_outage(cluster: RemoteCluster):
    """Every node refuses writes: the Scylla secondary misses every dual write meanwhile."""
    for index in range(3):
        cluster.node(index).inject("unavailable", applies_to="writes")
    try:
        yield
    finally:
        cluster.clear_faults()


@contextlib.contextmanager
def sql_message_outage(settings: Settings):
    """The SQL message store fails every write meanwhile, as when its database is unreachable.

    PostgreSQL: a trigger on the messages table raises SQLSTATE 57P03 (cannot_connect_now), which the driver
    reports as an OperationalError, like a lost server; the write log and the event outbox keep working.
    SQLite: another process holds the write lock longer than a writer waits for it, so every SQL write fails,
    the write log's included (the dual store then writes the secondary unlogged and only `verify` finds it).
    """
    engine = create_engine(settings.database_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(text(
                    "CREATE FUNCTION injected_outage() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    "RAISE EXCEPTION 'injected outage' USING ERRCODE = '57P03'; END $$"))
                connection.execute(text("CREATE TRIGGER injected_outage BEFORE INSERT OR UPDATE OR DELETE ON "
                                        "messages FOR EACH ROW EXECUTE FUNCTION injected_outage()"))
                try:
                    yield
                finally:
                    connection.execute(text("DROP TRIGGER injected_outage ON messages"))
                    connection.execute(text("DROP FUNCTION injected_outage()"))
            else:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    yield
                finally:
                    connection.exec_driver_sql("COMMIT")
    finally:
        engine.dispose()


class Traffic:
    """Writers that create, edit and delete messages and remember what the service acknowledged."""

    def __init__(self, channel_id: int):
        self.client: JsonClient | None = None
        self.phase = ""
        self.channel_id = channel_id
        self.expected: dict[int, str | None] = {}  # message id -> acknowledged content, None once deleted
        #: Messages whose last edit or delete timed out on the client: applied or not, nobody was told.
        self.uncertain: set[int] = set()
        self.running = False
        self.workers: list[gevent.Greenlet] = []

    def start(self, phase: str, client: JsonClient, writers: int = 4) -> None:
        self.phase, self.client, self.running = phase, client, True
        self.workers = [gevent.spawn(self.writer, n) for n in range(writers)]

    def stop(self) -> None:
        self.running = False
        gevent.joinall(self.workers, timeout=30, raise_error=True)

    def _send(self, method: str, path: str, body=None, *, about: int | None = None):
        try:
            return self.client.request(method, path, body)
        except TimeoutError:
            if about is not None:
                self.uncertain.add(about)
            return 0, None

    def writer(self, number: int) -> None:
        count = 0
        while self.running:
            count += 1
            status, body = self._send("POST", f"/channels/{self.channel_id}/messages",
                                      {"content": f"live {self.phase} {number}.{count}"})
            if status != 200:
                continue
            message_id = int(body["id"])
            self.expected[message_id] = body["content"]
            if count % 3 == 0:
                status, body = self._send("PATCH", f"/channels/{self.channel_id}/messages/{message_id}",
                                          {"content": f"live {self.phase} {number}.{count}, edited"},
                                          about=message_id)
                if status == 200:
                    self.expected[message_id] = body["content"]
            if count % 5 == 0:
                status, _ = self._send("DELETE", f"/channels/{self.channel_id}/messages/{message_id}", about=message_id)
                if status == 204:
                    self.expected[message_id] = None

    def history_editor(self, history: list[Message]) -> None:
        """Edits and deletes back-dated messages, which the backfill may be copying at that very moment."""
        for index, message in enumerate(history[::-7]):
            if not self.running:
                return
            path = f"/channels/{self.channel_id}/messages/{message.id}"
            if index % 2:
                if self._send("DELETE", path, about=message.id)[0] == 204:
                    self.expected[message.id] = None
            else:
                edit = {"content": f"{message.content}, edited live"}
                status, body = self._send("PATCH", path, edit, about=message.id)
                if status == 200:
                    self.expected[message.id] = body["content"]
            gevent.sleep(0.01)


def settle_and_verify(env: dict) -> None:
    """What the runbook has the operator do after each step: replay, repair what verify finds, replay until
    nothing is pending, verify again.

    A write whose end the write log could not record (its database was down too) counts as in flight until
    STALE_WRITER_SECONDS have passed, and only then may a replay copy its message: replay is polled until then.
    """
    flask(env, "messages", "replay")
    flask(env, "messages", "verify", "--repair")
    deadline = time.monotonic() + STALE_WRITER_SECONDS + 30
    while "still pending" in (replayed := flask(env, "messages", "replay")).stderr:
        assert time.monotonic() < deadline, replayed.stderr
        gevent.sleep(2)
    verified = flask(env, "messages", "verify", check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "no differences" in verified.stdout


def assert_every_acknowledged_write_in(store, traffic: Traffic, history: list[Message], name: str) -> None:
    checked = sorted(set(traffic.expected) - traffic.uncertain)
    stored = {}
    for start in range(0, len(checked), 50):
        stored.update(store.get_messages(traffic.channel_id, checked[start:start + 50]))
    for message_id in checked:
        content = traffic.expected[message_id]
        if content is None:
            assert message_id not in stored, f"deleted message {message_id} is back in {name}"
        else:
            assert message_id in stored, f"acknowledged message {message_id} is missing from {name}"
            assert stored[message_id].content == content, (
                f"message {message_id} lost its last write in {name}: it holds {stored[message_id].content!r}, "
                f"the last acknowledged write {content!r}")
    untouched = [m.id for m in history if m.id not in traffic.expected and m.id not in traffic.uncertain]
    found = sum(len(store.get_messages(traffic.channel_id, untouched[i:i + 50]))
                for i in range(0, len(untouched), 50))
    assert found == len(untouched), f"history missing from {name}"


def acknowledged_since(traffic: Traffic, before: set[int]) -> int:
    return sum(1 for message_id in set(traffic.expected) - before if traffic.expected[message_id] is not None)


@pytest.mark.timeout(420)
@pytest.mark.parametrize("database_backend", ["sqlite", "postgres"])
def test_migration_through_reads_from_scylla_and_back_loses_nothing(cql_cluster, tmp_path, database_backend):
    scylla_env = {"SCYLLA_HOSTS": ",".join(cql_cluster["contact_points"]), "SCYLLA_PORT": str(cql_cluster["port"]),
                  "SCYLLA_KEYSPACE": "chatstore_live", "SCYLLA_REPLICATION_FACTOR": "3"}
    with migrated_database(database_backend, tmp_path) as settings:
        env = {"DATABASE_URL": settings.database_url, "RATE_LIMIT_ENABLED": "false",
               "DUAL_STALE_WRITER_SECONDS": str(STALE_WRITER_SECONDS), **scylla_env}
        flask(env, "scylla", "migrate")

        app = create_app(settings)
        resources = app.extensions["chatstore"]
        factory = Factory(resources)
        bot = factory.actor("migration-bot")
        _guild_id, channel_id = factory.guild(bot)
        now_ms = int(datetime.now(timezone.utc).timestamp() * 1000)
        history = [Message(id=snowflake_from_ms(now_ms - (HISTORY - i) * DAY_MS // 2) + i, channel_id=channel_id,
                           author_id=bot.id, content=f"history {i}") for i in range(HISTORY)]
        sql_store = SqlMessageStore(resources.engine)
        for message in history:
            sql_store.create_message(message)

        checkpoint = tmp_path / "progress.sqlite3"
        migrate = ["messages", "migrate", "--to", "scylla", "--checkpoint", str(checkpoint), "--rate", "300"]
        step_three = {**env, "MESSAGE_STORE": "dual", "DUAL_PRIMARY": "sql", "DUAL_SECONDARY": "scylla"}
        step_four = {**env, "MESSAGE_STORE": "dual", "DUAL_PRIMARY": "scylla", "DUAL_SECONDARY": "sql"}
        cluster = cql_cluster["control"]
        traffic = Traffic(channel_id)

        # Steps 1 to 3: dual writes into ScyllaDB, a backfill killed and resumed, an outage of ScyllaDB.
        with gunicorn_server(step_three) as server, _log_on_failure(server):
            traffic.start("step 3", JsonClient(server.url, bot.token))
            editor = gevent.spawn(traffic.history_editor, history)
            first_run = subprocess.Popen([str(FLASK), *migrate], cwd=PROJECT_ROOT,
                                         env={**os.environ, **step_three},
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 60
            while copied_so_far(checkpoint) < 150 and first_run.poll() is None and time.monotonic() < deadline:
                gevent.sleep(0.05)
            first_run.send_signal(signal.SIGKILL)
            first_run.wait()
            killed_at = copied_so_far(checkpoint)
            assert 0 < killed_at < HISTORY, "the first run must be killed part way through"

            resumed = flask(step_three, *migrate)
            editor.join(timeout=30)
            before_outage = set(traffic.expected)
            with scylla_outage(cluster):
                wait_for(lambda: acknowledged_since(traffic, before_outage) >= 5, 60,
                         "writes acknowledged during the outage of ScyllaDB")
            traffic.stop()
        assert "copied" in resumed.stdout
        settle_and_verify(step_three)

        # Step 4: reads from ScyllaDB, SQL the secondary, then an outage of SQL's message writes.
        with gunicorn_server(step_four) as server, _log_on_failure(server):
            before_step = set(traffic.expected)
            traffic.start("step 4", JsonClient(server.url, bot.token))
            wait_for(lambda: acknowledged_since(traffic, before_step) >= 5, 60, "writes acknowledged at step 4")
            with sql_message_outage(settings):
                gevent.sleep(SECONDARY_OUTAGE_SECONDS)
                # Stopped within the outage, so that no later write makes the service replay what the secondary
                # missed: the commands below must copy it, in the right direction.
                traffic.stop()
        settle_and_verify(step_four)

        # Back to step 3 (the rollback of step 4), with another outage of ScyllaDB.
        with gunicorn_server(step_three) as server, _log_on_failure(server):
            before_step = set(traffic.expected)
            traffic.start("back to step 3", JsonClient(server.url, bot.token))
            wait_for(lambda: acknowledged_since(traffic, before_step) >= 5, 60, "writes acknowledged back at step 3")
            before_outage = set(traffic.expected)
            with scylla_outage(cluster):
                wait_for(lambda: acknowledged_since(traffic, before_outage) >= 5, 60,
                         "writes acknowledged during the outage of ScyllaDB")
                traffic.stop()
        settle_and_verify(step_three)

        created = [i for i, content in traffic.expected.items() if content is not None and i not in
                   {m.id for m in history}]
        assert len(created) > 30, "the live traffic must have written in every step"
        target = ScyllaMessageStore(settings.replace(
            message_store="scylla", scylla_hosts=tuple(cql_cluster["contact_points"]),
            scylla_port=cql_cluster["port"], scylla_keyspace="chatstore_live", scylla_request_timeout=30.0))
        try:
            assert_every_acknowledged_write_in(target, traffic, history, "ScyllaDB")
            assert_every_acknowledged_write_in(sql_store, traffic, history, "SQL")
        finally:
            target.close()
            resources.close()
