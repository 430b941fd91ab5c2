"""The hub watch: a request that blocks the gevent hub is logged with its stack, and counted.

It runs in a fresh process (tests/ops/hub_scenario.py), as the watch runs in a fresh gunicorn worker: late in a
long test session, gevent's monitor thread in the test process was seen to detect no block at all.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from config import PROJECT_ROOT


def test_a_request_blocking_the_hub_is_logged_with_its_stack_and_counted():
    environment = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
    result = subprocess.run([sys.executable, "-W", "ignore:Unable to monitor memory usage", "-m", "gevent.monkey",
                             "--module", "tests.ops.hub_scenario"], cwd=PROJECT_ROOT, env=environment,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.splitlines()[-1])

    assert seen["status"] == 200
    assert seen["after"] >= seen["before"] + 1
    [report, *_] = seen["reports"]
    assert report["level"] == "WARNING" and report["message"] == "gevent hub blocked for more than 50 ms"
    assert "block_the_hub_with_a_sleep_gevent_cannot_see" in report["stack"]
    assert "Greenlet Locals" not in report["stack"]
