"""Drive a server with wrk (Debian's ``wrk`` package) and the Lua scripts in bench/lua/, bounded in time."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from bench.paths import LUA_DIR

THREADS = 2
#: Far above any latency we expect, so that slow requests count in the percentiles instead of being dropped as
#: wrk's timeouts (which it leaves out of the latency histogram).
REQUEST_TIMEOUT_SECONDS = 30
_MARKER = "WRK_RESULT "


class WrkMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    errors: int
    mean_ms: float
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {"requests": self.requests, "seconds": round(self.seconds, 3), "errors": self.errors,
                "requests_per_second": round(self.requests_per_second, 1), "mean_ms": round(self.mean_ms, 2),
                "p50_ms": round(self.p50_ms, 2), "p99_ms": round(self.p99_ms, 2), "max_ms": round(self.max_ms, 2)}


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkMissing("wrk is not installed: apt-get install -y wrk")
    return path


def run_wrk(url: str, script: str, *, connections: int, seconds: float,
            environment: Mapping[str, str] = ()) -> LoadResult:
    """Run ``bench/lua/<script>`` against ``url`` for ``seconds``; the scripts read their parameters from
    ``environment`` (BENCH_* variables)."""
    command = [require_wrk(), f"--threads={min(THREADS, connections)}", f"--connections={connections}",
               f"--duration={max(1, round(seconds))}s", f"--timeout={REQUEST_TIMEOUT_SECONDS}s",
               f"--script={LUA_DIR / script}", url]
    env = {**os.environ, **environment, "LUA_PATH": f"{LUA_DIR}/?.lua;;"}
    # wrk stops by itself after --duration; the timeout only guards against a wedged wrk.
    finished = subprocess.run(command, env=env, capture_output=True, text=True, check=False,
                              timeout=seconds + REQUEST_TIMEOUT_SECONDS + 30)
    line = next((line for line in finished.stdout.splitlines() if line.startswith(_MARKER)), None)
    if finished.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({finished.returncode}):\n{finished.stdout}\n{finished.stderr}")
    data = json.loads(line[len(_MARKER):])
    latency = data["latency_us"]
    return LoadResult(
        requests=data["requests"], seconds=data["duration_us"] / 1e6, errors=sum(data["errors"].values()),
        mean_ms=latency["mean"] / 1000, p50_ms=latency["p50"] / 1000, p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
    )
