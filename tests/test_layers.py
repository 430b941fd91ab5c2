"""Each layer imports only its own layer and the ones below it, read from the source with ``ast`` (nothing runs).

A file belongs to the layer of the longest entry of ``LAYERS`` that names it, an entry being a module's path
without ".py" (so a module that becomes a package keeps its layer). A new package gets a line in its layer
(e.g. "app/gateway" under entry points); a file under app/, models/ or config/ that no entry names fails the
test until it has one.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ("app", "models", "config", "wsgi.py")

#: Top to bottom.
LAYERS: dict[str, tuple[str, ...]] = {
    "entry points": (
        "wsgi", "config/gunicorn", "config/worker", "app/__init__", "app/extensions", "app/api", "app/cli",
        # Discord's rate limits, as request hooks: HTTP middleware.
        "app/ratelimit",
        # health, metrics endpoint, access log, hub watch: wired into the app and the gunicorn workers.
        "app/observability",
        # The Discord gateway: WebSocket sessions fed by the event stream.
        "app/gateway",
    ),
    "services": ("app/services",),
    "components": (
        "app/messages", "app/events", "app/search", "app/read_cache", "app/auth", "app/blobs",
        # The rate limits' counts shared by a host's workers: a storage of the `limits` package.
        "app/ratelimit_shared",
        # The database pool that reports its metrics, built with the engine.
        "app/observability/instrumentation",
    ),
    "foundation": (
        "app/ids", "app/errors", "app/id_slots", "app/domain", "app/sqlite", "models", "config",
        # The metric objects and the log format: components (rate limits, the instrumented store) record to them.
        "app/observability/metrics", "app/observability/logs",
        # The tracer and the trace context: the stores, the event stream and the log format record to them.
        "app/observability/tracing",
    ),
}


def layer_of(path: str) -> str | None:
    """The layer of a repository-relative file path, or None when no entry names it."""
    best, best_length = None, -1
    for layer, entries in LAYERS.items():
        for entry in entries:
            matches = path == f"{entry}.py" or path.startswith(f"{entry}/")
            if matches and len(entry) > best_length:
                best, best_length = layer, len(entry)
    return best


def module_file(module: str, root: Path = ROOT) -> str | None:
    """The repository-relative file of a dotted module name, or None when it is not in this repository."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate.relative_to(root).as_posix()
    return None


def imported_files(path: str, source: str, root: Path = ROOT) -> set[str]:
    """The repository files that the module at ``path`` imports, function-level imports included."""
    package = path.removesuffix(".py").split("/")[:-1]  # a package's __init__.py is in the package itself
    found: set[str] = set()
    for node in ast.walk(ast.parse(source, filename=path)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            start = package[:len(package) - node.level + 1] if node.level else []
            base = ".".join([*start, *([node.module] if node.module else [])])
            # `from package import name` imports package.name when that is a module, else package itself.
            modules = [f"{base}.{alias.name}" if module_file(f"{base}.{alias.name}", root) else base
                       for alias in node.names]
        else:
            continue
        found.update(file for file in (module_file(module, root) for module in modules) if file)
    return found


def checked_files() -> list[str]:
    files = [ROOT / "wsgi.py"]
    for top in CHECKED[:-1]:
        files.extend((ROOT / top).rglob("*.py"))
    return sorted(f.relative_to(ROOT).as_posix() for f in files)


ORDER = list(LAYERS)


def upward_imports(path: str, source: str, root: Path = ROOT) -> list[str]:
    here = ORDER.index(layer_of(path))
    return [f"{path} ({ORDER[here]}) imports {target} ({layer_of(target)})"
            for target in sorted(imported_files(path, source, root))
            if layer_of(target) is not None and ORDER.index(layer_of(target)) < here]


def test_every_module_has_a_layer():
    unplaced = [path for path in checked_files() if layer_of(path) is None]
    assert not unplaced, f"add these to LAYERS in {Path(__file__).name}: {unplaced}"


def test_no_module_imports_a_layer_above_its_own():
    violations = [line for path in checked_files() if layer_of(path) is not None
                  for line in upward_imports(path, (ROOT / path).read_text())]
    assert not violations, "\n".join(violations)


@pytest.mark.parametrize(("path", "source", "expected"), [
    ("models/metadata.py", "from app.services.messages import MessageService\n",
     ["models/metadata.py (foundation) imports app/services/messages.py (services)"]),
    ("app/messages/sql.py", "def later():\n    from app import api\n",
     ["app/messages/sql.py (components) imports app/api/__init__.py (entry points)"]),
    ("app/services/pins.py", "from ..api.json import json_response\n",
     ["app/services/pins.py (services) imports app/api/json.py (entry points)"]),
    ("app/services/pins.py", "from app.messages.base import Message\nimport models\n", []),
])
def test_the_walk_finds_upward_imports_however_they_are_written(path, source, expected):
    assert upward_imports(path, source) == expected
