"""Scylla message stores for tests: on the in-process CQL test node, or on a real cluster (TEST_SCYLLA_HOSTS).

The contract suite (tests/contract) and tests/scylla both build their stores here.
"""
from __future__ import annotations

import contextlib
import functools
import os

import pytest

from app.cli.scylla import find_migrations, migrate
from app.messages.scylla import ScyllaMessageStore, build_cluster
from config import Settings
from tests.support.cqlnode import CqlTestCluster

KEYSPACE = "chatstore_test"
TABLES = ("messages", "channel_buckets", "reactions", "pins", "nonces", "messages_by_author")
REAL_CLUSTER_VARIABLE = "TEST_SCYLLA_HOSTS"


def settings_for(contact_points, port: int, **overrides) -> Settings:
    return Settings(message_store="scylla", scylla_hosts=tuple(contact_points), scylla_port=port,
                    scylla_keyspace=KEYSPACE, **overrides)


def apply_migrations(settings: Settings) -> None:
    cluster = build_cluster(settings)
    try:
        migrate(cluster.connect(), settings, find_migrations(), echo=lambda _: None)
    finally:
        cluster.shutdown()


@functools.cache
def shared_test_nodes() -> CqlTestCluster:
    """Three in-process test nodes with the schema, started once per test process and shared by the suites."""
    nodes = CqlTestCluster(nodes=3, first_address=10).start()
    apply_migrations(settings_for(nodes.contact_points, nodes.port))
    return nodes


def real_cluster_settings() -> Settings | None:
    """Settings for the real cluster named by TEST_SCYLLA_HOSTS (with TEST_SCYLLA_PORT, TEST_SCYLLA_LOCAL_DC,
    TEST_SCYLLA_REPLICATION_FACTOR), or None when it is not set."""
    hosts = [h.strip() for h in os.environ.get(REAL_CLUSTER_VARIABLE, "").split(",") if h.strip()]
    if not hosts:
        return None
    return settings_for(hosts, int(os.environ.get("TEST_SCYLLA_PORT", "9042")),
                        scylla_local_dc=os.environ.get("TEST_SCYLLA_LOCAL_DC", "datacenter1"),
                        scylla_replication_factor=int(os.environ.get("TEST_SCYLLA_REPLICATION_FACTOR", "3")),
                        scylla_request_timeout=10.0)


@functools.cache
def _migrated(settings: Settings) -> Settings:
    apply_migrations(settings)
    return settings


@functools.cache
def _cleaner(settings: Settings) -> ScyllaMessageStore:
    return ScyllaMessageStore(settings)


def empty_scylla_tables(settings: Settings) -> None:
    """Empty the message tables the store of ``settings`` uses (between tests sharing one keyspace)."""
    store = _cleaner(settings)
    for table in TABLES:
        store.session.execute(f"TRUNCATE {settings.scylla_keyspace}.{table}", timeout=60)


@contextlib.contextmanager
def fresh_store(settings: Settings):
    """A store on empty tables (truncated first, so a real cluster needs no new keyspace per test)."""
    store = ScyllaMessageStore(settings)
    try:
        for table in TABLES:
            store.session.execute(f"TRUNCATE {settings.scylla_keyspace}.{table}", timeout=60)
        yield store
    finally:
        store.close()


def test_node_store():
    """A fresh store on the shared test nodes."""
    nodes = shared_test_nodes()
    nodes.clear_faults()
    return fresh_store(settings_for(nodes.contact_points, nodes.port))


def real_cluster_store():
    """A fresh store on the real cluster; call only when real_cluster_settings() is not None."""
    return fresh_store(_migrated(real_cluster_settings()))


class ScyllaStoreFactory:
    """Stores for the contract suite (tests/contract/conftest.py's StoreFactory)."""

    def __init__(self, settings: Settings, make_fresh):
        self.settings = settings
        self._make_fresh = make_fresh

    def fresh(self):
        return self._make_fresh()

    @contextlib.contextmanager
    def unreachable(self):
        """Configured like the others, but every contact point refuses connections (port 1 on loopback)."""
        store = ScyllaMessageStore(self.settings.replace(
            scylla_hosts=("127.0.0.1",), scylla_port=1, scylla_connect_timeout=1.0))
        try:
            yield store
        finally:
            store.close()


@contextlib.contextmanager
def test_node_backend():
    nodes = shared_test_nodes()
    yield ScyllaStoreFactory(settings_for(nodes.contact_points, nodes.port), test_node_store)


@contextlib.contextmanager
def real_cluster_backend():
    """The real cluster's factory; skips (saying why) when TEST_SCYLLA_HOSTS is not set."""
    settings = real_cluster_settings()
    if settings is None:
        pytest.skip(f"{REAL_CLUSTER_VARIABLE} is not set: no real Scylla cluster to run the contract suite on")
    yield ScyllaStoreFactory(settings, real_cluster_store)
