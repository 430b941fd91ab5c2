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

#: "scylla" keeps the metadata in SQLite and puts messages in the Scylla store, on the shared CQL test nodes.
BACKENDS = ["sqlite", "postgres", "scylla"]
#: Test modules (of tests/api) that also run on the "scylla" backend: the ones that exercise the message store.
SCYLLA_MODULES = frozenset({"test_message_history", "test_messages", "test_messages_edit_delete", "test_reactions",
                            "test_pins", "test_attachments", "test_moderation", "test_webhooks"})


@pytest.fixture(scope="session", params=BACKENDS)
def database(request, tmp_path_factory):
    """Settings for a migrated database, once per backend per session."""
    if request.param != "scylla":
        with migrated_database(request.param, tmp_path_factory.mktemp(request.param)) as settings:
            yield settings
        return
    from tests.scylla.stores import settings_for, shared_test_nodes

    nodes = shared_test_nodes()
    scylla = settings_for(nodes.contact_points, nodes.port)
    with migrated_database("sqlite", tmp_path_factory.mktemp("scylla")) as settings:
        yield settings.replace(message_store="scylla", scylla_hosts=scylla.scylla_hosts,
                               scylla_port=scylla.scylla_port, scylla_keyspace=scylla.scylla_keyspace)


def pytest_collection_modifyitems(config, items):
    """Run the "scylla" backend only for the modules that exercise the message store; deselect the rest."""
    deselected = [item for item in items if getattr(item, "callspec", None) is not None
                  and item.callspec.params.get("database") == "scylla"
                  and item.module.__name__.rpartition(".")[2] not in SCYLLA_MODULES]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        dropped = set(map(id, deselected))
        items[:] = [item for item in items if id(item) not in dropped]


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
    if resources.settings.message_store == "scylla":
        from tests.scylla.stores import empty_scylla_tables

        empty_scylla_tables(resources.settings)


@pytest.fixture
def client(app, resources):
    return app.test_client()


@pytest.fixture
def make(resources):
    return Factory(resources)
