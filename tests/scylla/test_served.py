"""Real gunicorn with gevent workers on the Scylla store: each worker builds its own cooperative driver session
after the fork, messages land in the (out-of-process-for-the-workers) test nodes, and a store outage is a 503
with Retry-After."""
from __future__ import annotations

import http.client
import json

import gevent.pool
import pytest

from app.extensions import Resources
from tests.scylla.stores import KEYSPACE, shared_test_nodes
from tests.support.databases import migrated_database
from tests.support.factories import Factory
from tests.support.server import gunicorn_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    nodes = shared_test_nodes()
    with migrated_database("sqlite", tmp_path_factory.mktemp("served-scylla")) as settings:
        resources = Resources(settings)
        try:
            make = Factory(resources)
            owner = make.actor()
            _, channel_id = make.guild(owner)
        finally:
            resources.close()
        environment = {
            "DATABASE_URL": settings.database_url, "WEB_WORKERS": "2", "MESSAGE_STORE": "scylla",
            "SCYLLA_HOSTS": ",".join(nodes.contact_points), "SCYLLA_PORT": str(nodes.port),
            "SCYLLA_KEYSPACE": KEYSPACE, "SCYLLA_REQUEST_TIMEOUT": "1.0",
            # A burst of posts from one user would meet the production rate limits.
            "RATE_LIMIT_ENABLED": "0",
        }
        with gunicorn_server(environment) as server:
            yield server, nodes, owner, channel_id


def request(server, method: str, path: str, token: str, body: dict | None = None):
    """One request on a connection of its own, so that both workers get some. A worker's first request also
    connects its driver session, which takes a while on a busy machine."""
    connection = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        headers = {"Authorization": f"Bot {token}", "Content-Type": "application/json"}
        connection.request(method, path, json.dumps(body) if body is not None else None, headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read() or b"null")
    finally:
        connection.close()


def test_messages_go_through_the_workers_into_scylla(served):
    server, nodes, owner, channel_id = served
    path = f"/api/v10/channels/{channel_id}/messages"
    created = gevent.pool.Pool(8).map(
        lambda n: request(server, "POST", path, owner.token, {"content": f"hello {n}"}), range(8))
    assert [status for status, _, _ in created] == [200] * 8, created
    ids = sorted((int(body["id"]) for _, _, body in created), reverse=True)
    status, _, listed = request(server, "GET", f"{path}?limit=20", owner.token)
    assert status == 200 and [int(m["id"]) for m in listed] == ids
    stored = {clustering[0] for partition in nodes.dataset.data[(KEYSPACE, "messages")].values()
              for clustering in partition.rows}
    assert set(ids) <= stored


def test_a_store_outage_is_503_with_retry_after(served):
    server, nodes, owner, channel_id = served
    for node in nodes.nodes:
        node.inject("unavailable")
    try:
        status, headers, body = request(server, "GET", f"/api/v10/channels/{channel_id}/messages", owner.token)
    finally:
        nodes.clear_faults()
    assert status == 503, body
    assert float(headers["Retry-After"]) > 0
