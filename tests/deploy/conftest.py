"""The deployment's offline checks: the image, the rendered manifests, the policy check and the alert rules."""
from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

import pytest

from deploy.render import render

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = sorted(path.parent.name for path in (DEPLOY / "overlays").glob("*/kustomization.yaml"))


@functools.cache
def rendered(overlay: str) -> tuple[dict, ...]:
    return tuple(render(DEPLOY / "overlays" / overlay))


def require_tool(name: str, path: Path | None, how: str, required_by: str = "REQUIRE_DEPLOY_TOOLS") -> Path:
    """The tool's path. Without it the test fails where ``required_by`` is 1 (``make test`` sets
    REQUIRE_DEPLOY_TOOLS for the tools it installs, .ci/run REQUIRE_PROMTOOL) and skips, saying how to get it,
    elsewhere."""
    found = path if path is not None and path.exists() else (Path(p) if (p := shutil.which(name)) else None)
    if found is None:
        message = f"{name} is not installed: {how}"
        if os.environ.get(required_by) == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found
