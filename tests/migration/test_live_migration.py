"""The whole move from SQL to ScyllaDB, end to end: real gunicorn with dual writes under live create, edit and
delete traffic while `flask messages migrate` copies the history, is killed, and resumes; afterwards `verify`
finds no difference and every acknowledged write is in ScyllaDB as it was acknowledged."""
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

from app import create_app
from app.ids import snowflake_from_ms
from app.messages.base import Message
from app.messages.scylla import ScyllaMessageStore
from app.messages.sql import SqlMessageStore
from config import PROJECT_ROOT
from tests.support.cqlnode.control import RemoteCluster
from tests.support.databases import migrated_database
from tests.support.factories import Factory
from tests.support.http import JsonClient
from tests.support.server import gunicorn_server

FLASK = PROJECT_ROOT / ".venv" / "bin" / "flask"
HISTORY = 600
DAY_MS = 24 * 3600 * 1000


@pytest.fixture
def cql_cluster():
    with RemoteCluster(nodes=3, first_address=60) as nodes:
        yield {"contact_points": nodes.contact_points, "port": nodes.port}


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


class Traffic:
    """Writers that create, edit and delete messages and remember what the service acknowledged."""

    def __init__(self, client: JsonClient, channel_id: int):
        self.client = client
        self.channel_id = channel_id
        self.expected: dict[int, str | None] = {}  # message id -> acknowledged content, None once deleted
        #: Messages whose last edit or delete timed out on the client: applied or not, nobody was told.
        self.uncertain: set[int] = set()
        self.running = True

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
                                      {"content": f"live {number}.{count}"})
            if status != 200:
                continue
            message_id = int(body["id"])
            self.expected[message_id] = body["content"]
            if count % 3 == 0:
                status, body = self._send("PATCH", f"/channels/{self.channel_id}/messages/{message_id}",
                                          {"content": f"live {number}.{count}, edited"}, about=message_id)
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


@pytest.mark.timeout(300)
@pytest.mark.parametrize("database_backend", ["sqlite", "postgres"])
def test_backfill_killed_and_resumed_under_live_traffic_loses_nothing(cql_cluster, tmp_path, database_backend):
    scylla_env = {"SCYLLA_HOSTS": ",".join(cql_cluster["contact_points"]), "SCYLLA_PORT": str(cql_cluster["port"]),
                  "SCYLLA_KEYSPACE": "chatstore_live", "SCYLLA_REPLICATION_FACTOR": "3"}
    with migrated_database(database_backend, tmp_path) as settings:
        env = {"DATABASE_URL": settings.database_url, "RATE_LIMIT_ENABLED": "false", **scylla_env}
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
        resources.close()

        checkpoint = tmp_path / "progress.sqlite3"
        migrate = ["messages", "migrate", "--to", "scylla", "--checkpoint", str(checkpoint), "--rate", "300"]
        service_env = {**env, "MESSAGE_STORE": "dual", "DUAL_PRIMARY": "sql", "DUAL_SECONDARY": "scylla"}
        with gunicorn_server(service_env) as server, _log_on_failure(server):
            traffic = Traffic(JsonClient(server.url, bot.token), channel_id)
            workers = [gevent.spawn(traffic.writer, n) for n in range(4)]
            workers.append(gevent.spawn(traffic.history_editor, history))

            first_run = subprocess.Popen([str(FLASK), *migrate], cwd=PROJECT_ROOT, env={**os.environ, **service_env},
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 60
            while copied_so_far(checkpoint) < 150 and first_run.poll() is None and time.monotonic() < deadline:
                gevent.sleep(0.05)
            first_run.send_signal(signal.SIGKILL)
            first_run.wait()
            killed_at = copied_so_far(checkpoint)
            assert 0 < killed_at < HISTORY, "the first run must be killed part way through"

            resumed = flask(service_env, *migrate)
            traffic.running = False
            gevent.joinall(workers, timeout=30, raise_error=True)
        assert "copied" in resumed.stdout

        # Writes whose secondary half failed or raced are pending in the write log; `replay` settles them.
        flask(service_env, "messages", "replay")
        verified = flask(service_env, "messages", "verify", check=False)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "no differences" in verified.stdout

        created = [i for i, content in traffic.expected.items() if content is not None and i not in
                   {m.id for m in history}]
        assert len(created) > 10, "the live traffic must have written while the backfill ran"
        target = ScyllaMessageStore(settings.replace(
            message_store="scylla", scylla_hosts=tuple(cql_cluster["contact_points"]),
            scylla_port=cql_cluster["port"], scylla_keyspace="chatstore_live", scylla_request_timeout=30.0))
        try:
            checked = sorted(set(traffic.expected) - traffic.uncertain)
            stored = {}
            for start in range(0, len(checked), 50):
                stored.update(target.get_messages(channel_id, checked[start:start + 50]))
            for message_id in checked:
                content = traffic.expected[message_id]
                if content is None:
                    assert message_id not in stored, f"deleted message {message_id} is back"
                else:
                    assert stored[message_id].content == content, f"message {message_id} lost its last write"
            untouched = [m.id for m in history if m.id not in traffic.expected and m.id not in traffic.uncertain]
            found = sum(len(target.get_messages(channel_id, untouched[i:i + 50])) for i in range(0, len(untouched), 50))
            assert found == len(untouched)
        finally:
            target.close()
