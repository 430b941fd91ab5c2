"""Real gunicorn for tests: ``config/gunicorn.py`` with gevent workers on a free loopback port.

    with gunicorn_server({"DATABASE_URL": url, "WEB_WORKERS": "2"}) as server:
        urllib.request.urlopen(server.url + "/api/v10/users/@me")   # server.process is the master's Popen
        workers = children_of(server.process.pid)

The server's stdout and stderr go to ``server.log_path`` (a pipe nobody reads would fill and stall it); the log is
quoted in the error when the server dies or never answers. On exit the master gets SIGTERM (a graceful stop of
its workers), then SIGKILL if it is still running after ``stop_timeout`` seconds.
"""
from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import gevent
import pytest

from config import PROJECT_ROOT

GUNICORN = PROJECT_ROOT / ".venv" / "bin" / "gunicorn"
#: Any HTTP answer from this path (401 without a token) proves a worker has loaded the app.
READY_PATH = "/api/v10/users/@me"


@dataclass(frozen=True)
class RunningServer:
    url: str  # e.g. http://127.0.0.1:40123, without a trailing slash
    host: str
    port: int
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    """A port nothing listens on right now (the kernel's pick; another process could take it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def gunicorn_server(environment: Mapping[str, str] | None = None, *, start_timeout: float = 30.0,
                    stop_timeout: float = 25.0) -> Iterator[RunningServer]:
    """Start gunicorn with ``environment`` over the current one; yield once it answers HTTP; stop it by PID.

    BIND defaults to a free loopback port. ``stop_timeout`` exceeds the config's graceful_timeout (20 s) so a
    slow graceful stop is not cut short by the SIGKILL.
    """
    overrides = dict(environment or {})
    overrides.setdefault("BIND", f"127.0.0.1:{free_port()}")
    host, _, port = overrides["BIND"].rpartition(":")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **overrides}
    with tempfile.TemporaryDirectory(prefix="gunicorn-") as directory:
        # Attachments' files (and the key that signs their links) live with the server, not in the checkout.
        env.setdefault("BLOB_DIRECTORY", str(Path(directory) / "attachments"))
        log_path = Path(directory) / "gunicorn.log"
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                [str(GUNICORN), "-c", "config/gunicorn.py"], cwd=PROJECT_ROOT, env=env,
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                # Its own session, so a Ctrl-C meant for pytest does not also start gunicorn's shutdown.
                start_new_session=True,
            )
        server = RunningServer(f"http://{host}:{port}", host, int(port), process, log_path)
        try:
            wait_until_answering(server, start_timeout)
            yield server
        finally:
            stop(process, stop_timeout)


def wait_until_answering(server: RunningServer, timeout: float, path: str = READY_PATH) -> None:
    """Return once ``path`` gets any HTTP answer; raise with the server's log if it exits or never answers."""
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.process.returncode} before answering:\n{server.log()}")
        try:
            connection = http.client.HTTPConnection(server.host, server.port, timeout=2)
            try:
                connection.request("GET", path)
                connection.getresponse().read()
                return
            finally:
                connection.close()
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"gunicorn did not answer on {server.url} within {timeout:.0f}s:\n{server.log()}") from None
            time.sleep(0.1)


def stop(process: subprocess.Popen, timeout: float) -> int:
    """SIGTERM the process by its PID, SIGKILL it after ``timeout`` seconds; return its exit status."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
    return process.wait()


def children_of(pid: int) -> set[int]:
    """The PIDs of the processes whose parent is ``pid`` (a gunicorn master's: its workers)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def wait_for(condition, timeout: float, what: str):
    """Poll ``condition`` until it returns something true, and return that; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        gevent.sleep(0.1)
