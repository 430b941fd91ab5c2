"""Running a discord.py scenario script (tests/e2e/discord_*_scenario.py, see scenario_main.py) against a
server from a test."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from config import PROJECT_ROOT

SCENARIOS = PROJECT_ROOT / "tests" / "e2e"


def run_scenario(script: str, config: dict, server) -> dict:
    """The report of ``script`` run with ``config`` (its ``timeout`` included) against ``server``; the test
    fails with what was observed, the script's stderr and the server's log when the scenario does."""
    result = subprocess.run([sys.executable, str(SCENARIOS / script)], input=json.dumps(config),
                            capture_output=True, text=True, timeout=config["timeout"] + 30, cwd=PROJECT_ROOT)
    report = json.loads(result.stdout) if result.stdout.strip() else {}
    if result.returncode != 0 or "error" in report:
        completed = ", ".join(key for key in report if key != "error")
        pytest.fail(f"the discord.py scenario {script} failed (exit {result.returncode}) after: {completed}\n"
                    f"{report.get('error', '')}\n"
                    f"stderr:\n{result.stderr[-4000:]}\ngunicorn log (tail):\n{server.log()[-4000:]}")
    return report
