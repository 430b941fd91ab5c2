"""Run a WSGI app under the service's gunicorn settings (config/gunicorn.py) for a benchmark, stop it by PID.

Like tests/support/server.py (whose port picking, readiness wait and stopping it reuses), but it can serve another
app than the service's (the baselines), waits on a path that app answers, and reports the workers' PIDs.
"""
from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from config import PROJECT_ROOT
from tests.support.server import GUNICORN, RunningServer, free_port, stop, wait_until_answering

SERVICE_GUNICORN_CONFIG = PROJECT_ROOT / "config" / "gunicorn.py"


@contextmanager
def serve(wsgi_app: str, environment: Mapping[str, str], log_path: Path, *, ready_path: str = "/",
          options: Sequence[str] = (), start_timeout: float = 60.0) -> Iterator[RunningServer]:
    """Start gunicorn serving ``wsgi_app`` ("module:attribute") with ``environment`` over the current one;
    command-line ``options`` override the config file's settings."""
    # Every load generator connects from one loopback address, as clients behind a proxy would: no cap per address.
    overrides = {"BIND": f"127.0.0.1:{free_port()}", "MAX_CONNECTIONS_PER_ADDRESS": "0", **environment}
    host, _, port = overrides["BIND"].rpartition(":")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **overrides}
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [str(GUNICORN), "-c", str(SERVICE_GUNICORN_CONFIG), *options, wsgi_app], cwd=PROJECT_ROOT, env=env,
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
    server = RunningServer(f"http://{host}:{port}", host, int(port), process, log_path)
    try:
        wait_until_answering(server, start_timeout, ready_path)
        yield server
    finally:
        stop(process, 25.0)


def child_pids(pid: int) -> list[int]:
    """PIDs of the children process ``pid`` forked (from its main thread, as gunicorn's master does), from /proc."""
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def worker_pids(server: RunningServer) -> list[int]:
    """PIDs of the master's children (its workers)."""
    return child_pids(server.process.pid)


def wait_for_workers(server: RunningServer, count: int, timeout: float = 60.0) -> list[int]:
    """Wait until ``count`` workers have loaded their app, so that no measurement includes a worker's boot.

    A worker has loaded its app once orjson's extension (imported by every app served here, never by the
    master) is mapped into it. Returns the workers' PIDs.
    """
    deadline = time.monotonic() + timeout
    while True:
        pids = worker_pids(server)
        if len(pids) == count and all(_has_loaded_app(pid) for pid in pids):
            return pids
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(pids)} of {count} workers loaded after {timeout:.0f}s:\n{server.log()[-4000:]}")
        time.sleep(0.2)


def _has_loaded_app(pid: int) -> bool:
    try:
        return "orjson" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False
