"""Fixtures shared by the whole suite.

The suite runs in a gevent-patched process (``python -m gevent.monkey --module pytest``, as ``make test``
does), the way the service runs under gunicorn; it patches here when started as plain ``pytest``.
"""
from gevent import monkey

if not monkey.is_module_patched("socket"):
    monkey.patch_all()

import pytest  # noqa: E402

from app import create_app  # noqa: E402
from tests.support.databases import empty_tables, migrated_database  # noqa: E402
from tests.support.factories import Factory  # noqa: E402

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session", params=BACKENDS)
def database(request, tmp_path_factory):
    """Settings for a migrated database, once per backend per session."""
    with migrated_database(request.param, tmp_path_factory.mktemp(request.param)) as settings:
        yield settings


@pytest.fixture(scope="session")
def app(database):
    application = create_app(database)
    application.config["TESTING"] = True
    yield application
    application.extensions["chatstore"].close()


@pytest.fixture
def resources(app):
    resources = app.extensions["chatstore"]
    yield resources
    empty_tables(resources.engine)


@pytest.fixture
def client(app, resources):
    return app.test_client()


@pytest.fixture
def make(resources):
    return Factory(resources)
