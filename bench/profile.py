"""Where a scenario's worker CPU goes: py-spy on the service's workers while the scenario's load runs again.

``python -m bench --profile`` runs each scenario a second time, after its measured run (so py-spy's pauses do not
touch the figures), with ``py-spy record --subprocesses --nolineno --format raw`` on gunicorn's master: every
worker, sampled at :data:`RATE` Hz, only while it is on the CPU (py-spy leaves out idle threads, and a gevent
worker waiting in its hub's poll is idle). The raw file (collapsed stacks, one line per distinct stack with its
count) is kept beside the results for a flame graph (``flamegraph.pl`` or speedscope.app read it) and summarized
here by layer: each on-CPU sample goes to the innermost frame of its stack that belongs to a layer (psycopg2
called by SQLAlchemy called by the store is the driver's), so the shares add up to 100% and say, say, that the
driver takes 20% of a create and the access log 6%.
"""
from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

from config import PROJECT_ROOT

PY_SPY = PROJECT_ROOT / ".venv" / "bin" / "py-spy"
RATE = 200

#: Parts of a request's way, each recognised by a frame's file (py-spy's shortened path: package/module.py).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("HTTP server: gunicorn's worker, socket reads and writes", ("gunicorn/",)),
    ("Flask and Werkzeug: routing, request and response objects", ("flask/", "werkzeug/")),
    ("authentication: token to user", ("app/auth/tokens",)),
    ("permissions and access", ("app/auth/permissions", "app/services/access")),
    ("read cache: versions, kept pages", ("app/read_cache",)),
    ("request body parsing and validation", ("pydantic", "app/api/bodies", "app/api/schemas")),
    ("services: the rules of a write", ("app/services/",)),
    ("message store", ("app/messages/",)),
    ("SQLAlchemy", ("sqlalchemy/",)),
    # models/base.py sends the statements SQLAlchemy does not (a one-row read on the raw cursor, held writes): a
    # C call's time is its Python caller's in py-spy, so those frames' own time is the driver's work.
    ("database driver (psycopg2, sqlite3), its waits, raw statements", ("psycopg2/", "sqlite3/", "_wait_for_postgres",
                                                                       "models/base.py")),
    ("events: the outbox and the relay", ("app/events/",)),
    ("search indexer", ("app/search/",)),
    ("serialization to JSON", ("app/api/serializers", "app/api/json", "orjson")),
    ("metrics, access log, tracing", ("prometheus_client/", "app/observability/", "opentelemetry/", "logging/")),
    ("rate limits", ("app/ratelimit",)),
    ("gevent: the hub, greenlet switches, cooperative sockets", ("gevent/", "greenlet")),
)
OTHER = "other (the standard library, the interpreter)"


@contextmanager
def profiling(master_pid: int, raw_path: Path):
    """py-spy records every worker of the gunicorn master ``master_pid`` into ``raw_path`` for the block."""
    recorder = subprocess.Popen(
        [str(PY_SPY), "record", "--pid", str(master_pid), "--subprocesses", "--nolineno", "--format", "raw",
         "--rate", str(RATE), "--output", str(raw_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        # py-spy writes its file when interrupted, as at the end of a --duration.
        recorder.send_signal(subprocess.signal.SIGINT)
        try:
            recorder.wait(timeout=30)
        except subprocess.TimeoutExpired:
            recorder.kill()
            recorder.wait()


#: The outermost frame of gevent's monitor thread (the hub watch). py-spy counts that thread on the CPU in a
#: quarter of its samples under load, while the scheduler charged it 7 ms of CPU in 8 s (0.2% of its worker's):
#: it sleeps in a native call py-spy does not recognise as idle. Its samples are left out.
MONITOR_THREAD = "PeriodicMonitoringThread.__call__ (gevent/_monitor.py)"
#: The innermost frame of a gevent threadpool thread waiting for work (gevent's resolver and the SQLite search
#: engine run calls there), which py-spy likewise counts as busy: up to a quarter of a worker's samples. Left
#: out too; the thread's real work has other innermost frames and stays.
THREADPOOL_WAITING = "acquire_with_timeout (gevent/_threading.py)"


def read_stacks(raw_path: Path) -> Counter:
    """The raw file's stacks (tuples of frames, outermost first) with their sample counts, without the frames
    ``--subprocesses`` puts first to name the process, and without the idle threads' (above)."""
    stacks: Counter = Counter()
    for line in raw_path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = tuple(frame for frame in stack.split(";") if not frame.startswith("process "))
        if frames and count.isdigit() and frames[0] != MONITOR_THREAD and frames[-1] != THREADPOOL_WAITING:
            stacks[frames] += int(count)
    return stacks


def layer_shares(stacks: Counter, layers: Iterable[tuple[str, tuple[str, ...]]] = LAYERS) -> dict[str, float]:
    """Each layer's share of the samples, a sample going to the innermost frame of its stack in a layer."""
    layers = tuple(layers)
    total = sum(stacks.values())
    counts: Counter = Counter()
    for stack, count in stacks.items():
        counts[_innermost_layer(stack, layers)] += count
    return {name: counts[name] / total for name in [*(name for name, _ in layers), OTHER]} if total else {}


def _innermost_layer(stack: tuple[str, ...], layers: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    for frame in reversed(stack):
        for name, markers in layers:
            if any(marker in frame for marker in markers):
                return name
    return OTHER


def hottest_functions(stacks: Counter, top: int = 12) -> list[tuple[str, float]]:
    """The functions most samples were in, themselves (the stack's innermost frame), with their share."""
    total = sum(stacks.values())
    own: Counter = Counter()
    for stack, count in stacks.items():
        own[stack[-1]] += count
    return [(frame, count / total) for frame, count in own.most_common(top)] if total else []


def summarize(raw_path: Path) -> dict:
    stacks = read_stacks(raw_path)
    return {"samples": sum(stacks.values()), "raw": raw_path.name,
            "layers": {name: round(share, 3) for name, share in layer_shares(stacks).items()},
            "hottest": [[frame, round(share, 3)] for frame, share in hottest_functions(stacks)]}
