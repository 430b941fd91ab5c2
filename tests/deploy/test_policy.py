"""Checkov's Kubernetes policies over every rendered overlay: no finding left but those deploy/checkov.yaml and
the Deployments' checkov.io annotations list, each with its reason.

Checkov lives in a virtualenv of its own (its pinned dependencies conflict with the project's); ``make test``
installs it there from requirements-policy.txt.
"""
from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from tests.deploy.conftest import DEPLOY, OVERLAYS, ROOT, rendered, require_tool

CHECKOV = ROOT / ".venv-policy" / "bin" / "checkov"


@pytest.mark.timeout(300)
def test_the_rendered_manifests_pass_checkov(tmp_path):
    checkov = require_tool("checkov", CHECKOV, "make test installs it into .venv-policy (requirements-policy.txt)")
    for overlay in OVERLAYS:
        (tmp_path / f"{overlay}.yaml").write_text(yaml.safe_dump_all(rendered(overlay), sort_keys=False))
    result = subprocess.run([str(checkov), "--directory", str(tmp_path), "--config-file",
                             str(DEPLOY / "checkov.yaml"), "--output", "json", "--quiet", "--compact"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=280)
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [(check["check_id"], check["resource"], check["check_name"])
              for each in reports for check in each.get("results", {}).get("failed_checks", [])]
    assert not failed, failed
    assert all(each["summary"]["parsing_errors"] == 0 for each in reports)
    assert sum(each["summary"]["passed"] for each in reports) > 100, "checkov ran no policy on the manifests"
    assert result.returncode == 0, result.stderr[-2000:]
