"""Throwaway servers of our own for the security suite: Redis, and PostgreSQL that a test may stop and start.

Each runs from a temporary directory on a free loopback port, so a test can kill it without touching anything
shared, and each is stopped by its PID on exit.
"""
from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.server import children_of, free_port, stop


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not listen on {port} within {timeout}s:\n{log.read_text()}") from None
            time.sleep(0.05)


@contextmanager
def redis_server() -> Iterator[str]:
    """A private redis-server without persistence; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (Debian package redis-server)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="redis-") as directory:
        log = Path(directory) / "redis.log"
        with open(log, "wb") as log_file:
            process = subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", directory],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            _wait_for_port(port, process, 10, log)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            stop(process, 10)


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin")
    return Path(found[-1]).parent


@dataclass
class PostgresServer:
    """A private PostgreSQL cluster: ``start()``, ``stop()`` (fast shutdown, or ``kill()``) and its URL."""

    data: Path
    port: int
    user: str
    log: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/postgres"

    def run_as(self) -> dict:
        """Popen arguments that drop root: initdb and postgres refuse to run as root."""
        if os.geteuid() != 0:
            return {}
        entry = pwd.getpwnam(self.user)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def start(self, timeout: float = 20) -> None:
        with open(self.log, "ab") as log_file:
            self.process = subprocess.Popen(
                [str(_postgres_bin() / "postgres"), "-D", str(self.data), "-p", str(self.port),
                 "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.data}",
                 "-c", "fsync=off", "-c", "max_connections=60"],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
                **self.run_as(),
            )
        _wait_for_port(self.port, self.process, timeout, self.log)
        # The port opens before the server accepts logins; wait for a real answer.
        deadline = time.monotonic() + timeout
        while subprocess.run([str(_postgres_bin() / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port),
                              "-q"]).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not accept connections:\n{self.log.read_text()}")
            time.sleep(0.1)

    def freeze(self) -> None:
        """SIGSTOP the postmaster, then every backend: connections stay open, and nothing answers on them."""
        self._signal_all(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal_all(signal.SIGCONT)

    def _signal_all(self, signum: int) -> None:
        os.kill(self.process.pid, signum)
        # A backend the postmaster was forking as it stopped may appear after a first look: look again until a
        # look finds no process not yet signalled.
        signalled: set[int] = set()
        while True:
            fresh = set(children_of(self.process.pid)) - signalled
            if not fresh:
                return
            for child in fresh:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signum)
            signalled |= fresh

    def stop(self) -> None:
        """Fast shutdown (SIGINT): sessions are cut, as when a server is restarted."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(2)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("no unprivileged account to run PostgreSQL as")


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """initdb a new cluster in a temporary directory, start it on a free port; remove it afterwards."""
    user = _unprivileged_user() if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    directory = Path(tempfile.mkdtemp(prefix="pg-fault-"))
    try:
        data = directory / "data"
        data.mkdir()
        if os.geteuid() == 0:
            entry = pwd.getpwnam(user)
            os.chown(directory, entry.pw_uid, entry.pw_gid)
            os.chown(data, entry.pw_uid, entry.pw_gid)
        server = PostgresServer(data=data, port=free_port(), user=user, log=directory / "postgres.log")
        subprocess.run([str(_postgres_bin() / "initdb"), "-D", str(data), "-U", user, "--auth=trust", "--no-sync",
                        "-E", "UTF8"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=directory,
                       **server.run_as())
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
