"""docs/configuration.md is exactly what the settings definition renders, so it cannot drift from the code."""
from config import _ENVIRONMENT, DESCRIPTIONS
from config.document import COMMAND, DOCUMENT, render


def test_every_environment_variable_has_a_description():
    assert set(_ENVIRONMENT) <= set(DESCRIPTIONS), \
        f"describe {sorted(set(_ENVIRONMENT) - set(DESCRIPTIONS))} in DESCRIPTIONS (config/__init__.py)"
    assert set(DESCRIPTIONS) <= set(_ENVIRONMENT), \
        f"DESCRIPTIONS names variables nothing reads: {sorted(set(DESCRIPTIONS) - set(_ENVIRONMENT))}"


def test_the_configuration_document_matches_the_settings():
    assert DOCUMENT.is_file() and DOCUMENT.read_text() == render(), (
        f"docs/configuration.md is out of date with config/__init__.py: run `{COMMAND}` "
        "(or `python -m config.document`) and commit the result")


def test_each_variable_is_one_row_with_its_default():
    rows = {line.split(" | ")[0].strip("| `"): line for line in render().splitlines() if line.startswith("| `")}
    assert list(rows) == list(_ENVIRONMENT)
    assert rows["WEB_WORKERS"].startswith("| `WEB_WORKERS` | `2` |")
    assert rows["DATABASE_URL"].startswith("| `DATABASE_URL` | `sqlite:///<repo>/var/chatstore.sqlite3` |")
    assert rows["SCYLLA_HOSTS"].startswith("| `SCYLLA_HOSTS` | unset |")
    assert rows["RATE_LIMIT_ENABLED"].startswith("| `RATE_LIMIT_ENABLED` | `true` |")
