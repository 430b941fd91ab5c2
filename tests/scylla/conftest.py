"""Fixtures for the CQL test node and the Scylla message store: in-process nodes, driver sessions on them."""
from __future__ import annotations

import pytest
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

from app.messages.gevent_connection import CooperativeConnection
from tests.support.cqlnode import CqlTestCluster


@pytest.fixture
def cql_nodes():
    """Three in-process nodes on 127.0.0.2-4, torn down after the test."""
    with CqlTestCluster(nodes=3) as nodes:
        yield nodes


def connect(nodes, **profile_options) -> Cluster:
    """A driver Cluster on ``nodes`` with token-aware, DC-aware routing, as production uses."""
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy("datacenter1")), request_timeout=5,
        **profile_options)
    return Cluster(nodes.contact_points, port=nodes.port, protocol_version=4,
                   connection_class=CooperativeConnection, execution_profiles={EXEC_PROFILE_DEFAULT: profile})


@pytest.fixture
def driver(cql_nodes):
    cluster = connect(cql_nodes)
    yield cluster
    cluster.shutdown()


@pytest.fixture
def session(driver):
    return driver.connect()


@pytest.fixture
def store():
    """A ScyllaMessageStore on empty tables of the shared in-process test nodes."""
    from tests.scylla.stores import test_node_store

    with test_node_store() as fresh:
        yield fresh
