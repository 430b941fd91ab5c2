"""A CQL test node: the native protocol v4 and enough of Cassandra's semantics to run the real driver against.

In-process::

    with CqlTestCluster(nodes=3) as cluster:
        Cluster(cluster.contact_points, port=cluster.port, ...)

As a subprocess (for tests that start gunicorn workers): ``python -m tests.support.cqlnode --nodes 3``, driven
through :class:`tests.support.cqlnode.control.RemoteCluster`.
"""
from .server import CqlTestCluster, Node

__all__ = ["CqlTestCluster", "Node"]
