"""The benchmark's tools: the open-loop generator (bench/open_loop.py) counts the requests a stalled server delays
from when they were due (no coordinated omission); a process that works in short bursts is charged its CPU;
issue 17's per-backend targets and the capacity model (bench/capacity.py) read a run's figures."""
from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

from bench.open_loop import get_request, run_open_loop
from bench.probes import process_cpu_seconds
from bench.report import backend_targets

STALL_SECONDS = 0.4


def _server(stall_at: float) -> tuple[socket.socket, threading.Event]:
    """A keep-alive HTTP server on loopback answering 204 at once, except that it answers nothing for
    STALL_SECONDS once ``stall_at`` seconds after it starts."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    stop = threading.Event()
    started = time.monotonic()
    stalled = threading.Event()

    def serve(connection: socket.socket) -> None:
        buffer = b""
        with connection:
            while not stop.is_set():
                while b"\r\n\r\n" not in buffer:
                    chunk = connection.recv(4096)
                    if not chunk:
                        return
                    buffer += chunk
                _head, _, buffer = buffer.partition(b"\r\n\r\n")
                if not stalled.is_set() and time.monotonic() - started >= stall_at:
                    stalled.set()
                    time.sleep(STALL_SECONDS)
                connection.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(connection,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener, stop


def test_a_stall_counts_for_every_request_due_during_it():
    listener, stop = _server(stall_at=0.5)
    host, port = listener.getsockname()
    try:
        # One connection, 100 requests a second: a closed-loop client would send one request during the stall
        # and count one slow answer; 40 were due.
        result = run_open_loop(host, port, get_request(host, ["/"], ["t"]), rate=100, seconds=1.5, connections=1)
    finally:
        stop.set()
        listener.close()
    assert result.answered == result.offered == 150
    assert result.errors == 0
    assert result.p50_ms < 0.5 * STALL_SECONDS * 1000
    # About 40 of 150 requests were due during the stall, so the 99th percentile is near the stall's length; a
    # closed loop would have counted one slow request in about 110 (under 1%).
    assert result.p999_ms >= result.p99_ms >= 0.75 * STALL_SECONDS * 1000


def test_a_process_working_in_bursts_shorter_than_a_tick_is_charged_its_cpu():
    """A database backend answering one quick statement at a time runs in such bursts; a tick-sampled figure
    charges it next to nothing."""
    bursts = ("import time\n"
              "for _ in range(200):\n"
              "    end = time.thread_time() + 0.001\n"
              "    while time.thread_time() < end: pass\n"
              "    time.sleep(0.004)\n"
              "input()\n")
    with subprocess.Popen([sys.executable, "-c", bursts], stdin=subprocess.PIPE) as child:
        time.sleep(0.1)
        before = process_cpu_seconds(child.pid)
        deadline = time.monotonic() + 10
        while process_cpu_seconds(child.pid) - before < 0.15 and time.monotonic() < deadline:
            time.sleep(0.05)
        charged = process_cpu_seconds(child.pid) - before
        child.communicate(b"\n")
    assert 0.15 <= charged < 1.0


def test_backend_targets_compare_each_backend_with_its_own_ceilings():
    def figures(rps: float, cpu: float, **extra) -> dict:
        return {"requests_per_second": rps, "cpu_ms_per_request": cpu, "net_cpu_ms_per_request": cpu, **extra}

    run = {"backends": {
        "postgres": {"scenarios": {"create": figures(400, 2.0), "hot-write": figures(360, 2.1),
                                   "latest": figures(900, 0.7), "uncached": figures(300, 2.0),
                                   "latest-limited": figures(800, 0.8)},
                     "ceilings": {"insert": figures(800, 1.0), "page": figures(1000, 1.2)},
                     "open_loop": {"latest": {"p99_ms": 12.0}, "create": {"p99_ms": 45.0}}},
        "sqlite": {"skipped": "not asked"},
    }}
    targets = {target.name: target for target in backend_targets(run)}
    assert all(name.startswith("postgres: ") for name in targets)
    assert targets["postgres: create: x the storage ceiling's insert"].measured == "0.50"
    assert targets["postgres: create: x the storage ceiling's insert"].passed is False
    assert targets["postgres: hot-write: one channel x the same load over 64 channels"].passed is True
    assert targets["postgres: open loop at 50% of max: p99 latest page (ms)"].passed is True
    assert targets["postgres: open loop at 50% of max: p99 create (ms)"].passed is False
    assert targets["postgres: worker CPU ms per cached page of 50 (net)"].passed is True
    assert targets["postgres: rate limits counted (shared) x off, latest page"].measured == "0.89"


def test_the_capacity_model_is_measured_cpu_times_the_rate_over_the_utilization():
    from bench import capacity

    def figures(cpu: float, database: float | None = None, **extra) -> dict:
        return {"cpu_ms_per_request": cpu + 1, "net_cpu_ms_per_request": cpu, "db_cpu_ms_per_request": database,
                **extra}

    run = {"started_at": "2026-12-06T00:00:00+00:00", "backends": {
        "postgres": {"scenarios": {"create": figures(2.0, 0.5), "uncached": figures(3.0, 1.0,
                                                                                   store_calls_per_request=2.0),
                                   "latest": figures(1.0, 0.1)}},
        "sqlite": {"scenarios": {"create": figures(1.5)}},  # no page measured: left out
    }}
    [need] = capacity.needs(run)
    writes = capacity.MESSAGES_PER_DAY / 86_400 * capacity.PEAK_FACTOR
    assert need.backend == "postgres"
    assert need.worker_cores == (writes * 2.0 + writes * capacity.READS_PER_WRITE * 3.0) / 1000 / capacity.UTILIZATION
    assert need.write_database_cores == writes * 0.5 / 1000 / capacity.UTILIZATION
    assert need.database_requests_per_second == writes * 1 + writes * capacity.READS_PER_WRITE * 3
    text = capacity.markdown(run, "run.json")
    assert f"{need.worker_cores:,.0f}" in text and "single primary" in text
    assert not capacity.complete(run)


def test_a_profile_sample_goes_to_the_innermost_layer_of_its_stack(tmp_path):
    from bench.profile import OTHER, read_stacks, summarize

    raw = tmp_path / "raw.txt"
    raw.write_text(
        'process 1:"gunicorn";handle (gunicorn/workers/ggevent.py);create (app/services/messages.py);'
        "create_message (app/messages/sql.py);execute (sqlalchemy/engine/base.py);"
        "_wait_for_postgres (app/extensions.py) 6\n"
        'process 1:"gunicorn";handle (gunicorn/workers/ggevent.py);create (app/services/messages.py) 3\n'
        'process 1:"gunicorn";PeriodicMonitoringThread.__call__ (gevent/_monitor.py) 50\n'
        'process 1:"gunicorn";run (gevent/threadpool.py);acquire_with_timeout (gevent/_threading.py) 40\n'
        'process 1:"gunicorn";<module> (runpy.py) 1\n')
    assert sum(read_stacks(raw).values()) == 10
    layers = summarize(raw)["layers"]
    assert layers["database driver (psycopg2, sqlite3), its waits, raw statements"] == 0.6
    assert layers["services: the rules of a write"] == 0.3
    assert layers[OTHER] == 0.1
    assert layers["SQLAlchemy"] == layers["message store"] == 0
