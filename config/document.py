"""docs/configuration.md rendered from the settings definition; `python -m config.document` (`make docs`) writes it.

One row per environment variable of ``config._ENVIRONMENT``, its default read from ``Settings`` and its meaning from
``config.DESCRIPTIONS``; tests/unit/test_configuration_doc.py fails when the file differs from what this renders.
"""
from __future__ import annotations

import dataclasses

from config import _ENVIRONMENT, DESCRIPTIONS, PROJECT_ROOT, Settings

DOCUMENT = PROJECT_ROOT / "docs" / "configuration.md"
COMMAND = "make docs"

HEADER = f"""\
# Configuration

<!-- Generated from config/__init__.py by `{COMMAND}` (python -m config.document); edit the settings there. -->

Settings come from the environment, are read once at startup (`config.load_settings`) and validated together: a
bad value stops the process with one error that lists every problem. An empty variable counts as unset. Tests
build `config.Settings` directly. Sizing advice for the settings that matter under load is in
[operations.md](operations.md#settings-that-matter-under-load-and-how-to-size-them).

| Variable | Default | Meaning |
|---|---|---|
"""


def _shown_default(value: object) -> str:
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if value in ((), ""):
        return "unset"
    # The default SQLite file sits in the checkout, wherever that is.
    return f"`{str(value).replace(str(PROJECT_ROOT), '<repo>')}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    """The whole of docs/configuration.md; raises KeyError naming a variable that has no description."""
    missing = [name for name in _ENVIRONMENT if name not in DESCRIPTIONS]
    if missing:
        raise KeyError(f"add a one-line description of {', '.join(missing)} to DESCRIPTIONS in config/__init__.py")
    defaults = {field.name: field.default for field in dataclasses.fields(Settings)}
    rows = [f"| `{name}` | {_shown_default(defaults[attribute])} | {_cell(DESCRIPTIONS[name])} |"
            for name, (attribute, _parse) in _ENVIRONMENT.items()]
    return HEADER + "\n".join(rows) + "\n"


def main() -> None:
    DOCUMENT.parent.mkdir(exist_ok=True)
    DOCUMENT.write_text(render())
    print(f"wrote {DOCUMENT.relative_to(PROJECT_ROOT)}")


if __name__ == "__main__":
    main()
