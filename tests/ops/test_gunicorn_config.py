"""config/gunicorn.py on its own: the metrics directory it prepares and cleans, the hub watch settings, and the
worker's loaded objects frozen out of the garbage collector's sight."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from config import PROJECT_ROOT

# Loads the config as gunicorn does (a fresh, patched process) and calls its hooks the way the arbiter would.
PROBE = """
import gc, json, os, runpy, sys, gevent
from pathlib import Path
config = runpy.run_path("config/gunicorn.py")
directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
stale = directory / "counter_12345.db"
stale.write_bytes(b"left by an earlier run")
kept = directory / "notes.txt"
kept.write_text("not a metrics file")
config["on_starting"](None)
after_start = sorted(p.name for p in directory.iterdir())
tracked_before = len(gc.get_objects())
config["post_worker_init"](None)
monitor = gevent.get_hub().periodic_monitoring_thread
frozen, tracked_after = gc.get_freeze_count(), len(gc.get_objects())
config["on_exit"](None)
print(json.dumps({"directory": str(directory), "after_start": after_start, "exists_after_exit": directory.exists(),
                  "max_blocking_time": gevent.config.max_blocking_time, "monitoring": monitor is not None,
                  "graceful_timeout": config["graceful_timeout"], "tracked_before": tracked_before,
                  "frozen": frozen, "tracked_after": tracked_after}))
"""


def load_config(environment: dict[str, str]) -> dict:
    env = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=PROJECT_ROOT, env={**env, **environment},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_a_private_metrics_directory_is_made_emptied_at_start_and_removed_at_exit():
    seen = load_config({"HUB_BLOCKING_THRESHOLD_MS": "250", "GRACEFUL_TIMEOUT": "7.5"})

    assert Path(seen["directory"]).name.startswith("chatstore-metrics-")
    assert seen["after_start"] == ["notes.txt"]
    assert not seen["exists_after_exit"]
    assert (seen["max_blocking_time"], seen["monitoring"]) == (0.25, True)
    assert seen["graceful_timeout"] == 8  # gunicorn takes whole seconds


def test_what_a_worker_loaded_is_out_of_the_collectors_sight_once_it_starts():
    """A full collection then walks only what requests leave, not the worker's modules and tables."""
    seen = load_config({})

    assert seen["frozen"] >= seen["tracked_before"] // 2
    assert seen["tracked_after"] < seen["tracked_before"] // 10


def test_an_operators_metrics_directory_is_emptied_but_kept_and_the_watch_can_be_off(tmp_path):
    seen = load_config({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "HUB_BLOCKING_THRESHOLD_MS": "0"})

    assert seen["directory"] == str(tmp_path)
    assert seen["after_start"] == ["notes.txt"]
    assert seen["exists_after_exit"]
    assert seen["monitoring"] is False


# Builds the access atoms through the config's logger class and through gunicorn's own, counting each build.
ACCESS_PROBE = """
import json, runpy
from gunicorn import glogging
from gunicorn.config import Config
logger_class = runpy.run_path("config/gunicorn.py")["logger_class"]
config = Config()
config.set("logconfig_dict", {"version": 1, "disable_existing_loggers": False})
built = []
glogging.Logger.atoms = lambda *args: built.append(1) or {}
logger_class(config).access(None, None, {}, None)
service = len(built)
glogging.Logger(config).access(None, None, {}, None)
print(json.dumps({"service": service, "gunicorn": len(built) - service}))
"""


def test_gunicorn_builds_no_access_line_of_its_own():
    """The app writes the access line; gunicorn's, which nothing would print, is not even built."""
    result = subprocess.run([sys.executable, "-c", ACCESS_PROBE], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {"service": 0, "gunicorn": 1}
