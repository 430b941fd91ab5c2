"""The CQL test node, through the real driver: protocol, system tables, CQL semantics, routing, faults."""
from __future__ import annotations

import operator
import random
import socket
import struct
import time

import pytest
from cassandra import ConsistencyLevel, InvalidRequest, Unavailable
from cassandra.cluster import NoHostAvailable
from cassandra.protocol import SyntaxException
from cassandra.query import BatchStatement, SimpleStatement

from tests.support.cqlnode.control import RemoteCluster

from .conftest import connect

TABLE = """
    CREATE TABLE ks.events (
        channel_id bigint, bucket int, id bigint, body text, tags frozen<list<bigint>>,
        PRIMARY KEY ((channel_id, bucket), id)
    ) WITH CLUSTERING ORDER BY (id DESC)
"""


def create_schema(session, replication_factor: int = 3) -> None:
    session.execute("CREATE KEYSPACE ks WITH replication = "
                    f"{{'class': 'NetworkTopologyStrategy', 'datacenter1': {replication_factor}}}")
    session.execute(TABLE)
    session.set_keyspace("ks")


def insert_events(session, ids, channel_id: int = 1, bucket: int = 7) -> None:
    insert = session.prepare("INSERT INTO events (channel_id, bucket, id, body) VALUES (?, ?, ?, ?)")
    for event_id in ids:
        session.execute(insert, (channel_id, bucket, event_id, f"event {event_id}"))


def test_driver_discovers_every_node_and_the_token_ring(driver, session, cql_nodes):
    assert sorted(h.address for h in driver.metadata.all_hosts()) == cql_nodes.contact_points
    assert driver.metadata.partitioner == "org.apache.cassandra.dht.Murmur3Partitioner"
    assert len(driver.metadata.token_map.ring) == 3 * 8


def test_schema_reaches_driver_metadata_and_create_if_not_exists_is_rerunnable(driver, session):
    create_schema(session)
    session.execute(TABLE.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"))
    table = driver.metadata.keyspaces["ks"].tables["events"]
    assert [c.name for c in table.partition_key] == ["channel_id", "bucket"]
    assert [c.name for c in table.clustering_key] == ["id"]
    assert "CLUSTERING ORDER BY (id DESC)" in table.export_as_string()
    assert driver.metadata.keyspaces["ks"].replication_strategy.dc_replication_factors == {"datacenter1": 3}


def test_clustering_order_ranges_reverse_order_and_limit(session):
    create_schema(session)
    insert_events(session, range(1, 11))
    insert_events(session, [100], bucket=8)
    select = session.prepare("SELECT id FROM events WHERE channel_id = ? AND bucket = ? AND id < ? AND id >= ? LIMIT ?")
    assert [r.id for r in session.execute(select, (1, 7, 9, 3, 4))] == [8, 7, 6, 5]
    ascending = session.prepare(
        "SELECT id FROM events WHERE channel_id = ? AND bucket = ? AND id > ? ORDER BY id ASC LIMIT ?")
    assert [r.id for r in session.execute(ascending, (1, 7, 2, 3))] == [3, 4, 5]
    assert [r.id for r in session.execute("SELECT id FROM events WHERE channel_id = 1 AND bucket = 8")] == [100]


def test_paging_returns_every_row_once_in_order(session):
    create_schema(session)
    insert_events(session, range(1, 24))
    select = session.prepare("SELECT id FROM events WHERE channel_id = ? AND bucket = ?")
    select.fetch_size = 5
    result = session.execute(select, (1, 7))
    assert result.has_more_pages
    assert [r.id for r in result] == list(range(23, 0, -1))
    limited = session.prepare("SELECT id FROM events WHERE channel_id = ? AND bucket = ? LIMIT 7")
    limited.fetch_size = 3
    assert [r.id for r in session.execute(limited, (1, 7))] == list(range(23, 16, -1))


def test_collections_and_nulls_round_trip(session):
    create_schema(session)
    insert = session.prepare("INSERT INTO events (channel_id, bucket, id, tags) VALUES (?, ?, ?, ?)")
    session.execute(insert, (1, 7, 1, [3, 1, 2]))
    row = session.execute("SELECT body, tags FROM events WHERE channel_id = 1 AND bucket = 7 AND id = 1").one()
    assert (row.body, row.tags) == (None, [3, 1, 2])


def test_ttl_expires_cells_and_rows(session, cql_nodes):
    create_schema(session)
    session.execute(session.prepare(
        "INSERT INTO events (channel_id, bucket, id, body) VALUES (?, ?, ?, ?) USING TTL ?"), (1, 7, 1, "soon", 60))
    insert_events(session, [2])
    cql_nodes.advance_clock(59)
    assert len(list(session.execute("SELECT id FROM events WHERE channel_id = 1 AND bucket = 7"))) == 2
    cql_nodes.advance_clock(2)
    assert [r.id for r in session.execute("SELECT id FROM events WHERE channel_id = 1 AND bucket = 7")] == [2]


def test_update_after_delete_leaves_a_partial_row_like_cassandra(session):
    """The edit/delete race the message store must survive: UPDATE is an upsert without a row marker."""
    create_schema(session)
    insert_events(session, [1])
    session.execute("DELETE FROM events WHERE channel_id = 1 AND bucket = 7 AND id = 1")
    session.execute("UPDATE events SET tags = [5] WHERE channel_id = 1 AND bucket = 7 AND id = 1")
    row = session.execute("SELECT * FROM events WHERE channel_id = 1 AND bucket = 7 AND id = 1").one()
    assert (row.body, row.tags) == (None, [5])
    session.execute("DELETE tags FROM events WHERE channel_id = 1 AND bucket = 7 AND id = 1")
    assert session.execute("SELECT * FROM events WHERE channel_id = 1 AND bucket = 7 AND id = 1").one() is None


def test_older_writes_do_not_resurrect_deleted_rows(session):
    create_schema(session)
    session.execute("INSERT INTO events (channel_id, bucket, id, body) VALUES (1, 7, 1, 'new') USING TIMESTAMP 2000")
    session.execute("DELETE FROM events USING TIMESTAMP 3000 WHERE channel_id = 1 AND bucket = 7")
    session.execute("INSERT INTO events (channel_id, bucket, id, body) VALUES (1, 7, 1, 'old') USING TIMESTAMP 2500")
    assert session.execute("SELECT * FROM events WHERE channel_id = 1 AND bucket = 7").one() is None


def test_lightweight_transactions(session):
    create_schema(session)
    insert = session.prepare(
        "INSERT INTO events (channel_id, bucket, id, body) VALUES (?, ?, ?, ?) IF NOT EXISTS USING TTL 30")
    assert session.execute(insert, (1, 7, 1, "first")).was_applied
    second = session.execute(insert, (1, 7, 1, "second"))
    assert not second.was_applied and second.one().body == "first"
    update = session.prepare("UPDATE events SET body = ? WHERE channel_id = ? AND bucket = ? AND id = ? IF EXISTS")
    assert session.execute(update, ("edited", 1, 7, 1)).was_applied
    assert not session.execute(update, ("ghost", 1, 7, 2)).was_applied
    assert session.execute("SELECT * FROM events WHERE channel_id = 1 AND bucket = 7 AND id = 2").one() is None


def test_batch_writes_every_statement(session):
    create_schema(session)
    insert = session.prepare("INSERT INTO events (channel_id, bucket, id, body) VALUES (?, ?, ?, ?)")
    batch = BatchStatement()
    batch.add(insert, (1, 7, 1, "a"))
    batch.add(insert, (2, 7, 1, "b"))
    batch.add(SimpleStatement("DELETE FROM events WHERE channel_id = 1 AND bucket = 7 AND id = 9"))
    session.execute(batch)
    assert session.execute("SELECT body FROM events WHERE channel_id = 2 AND bucket = 7").one().body == "b"


@pytest.mark.parametrize("statement, error", [
    ("SELECT * FROM events WHERE body = 'x' ALLOW FILTERING", SyntaxException),
    ("SELECT * FROM events WHERE channel_id = 1", InvalidRequest),
    ("SELECT * FROM events WHERE channel_id = 1 AND bucket = 7 AND body = 'x'", InvalidRequest),
    ("SELECT * FROM nowhere WHERE channel_id = 1", InvalidRequest),
    ("UPDATE events SET nope = 1 WHERE channel_id = 1 AND bucket = 7 AND id = 1", InvalidRequest),
    ("UPDATE events SET body = 'x' WHERE channel_id = 1 AND bucket = 7", InvalidRequest),
    ("SELECT COUNT(*) FROM events", SyntaxException),
    ("DROP TABLE events", SyntaxException),
    ("CREATE TABLE t (a int PRIMARY KEY) WITH bloom = 1", SyntaxException),
    ("INSERT INTO events (channel_id, bucket, id) VALUES (1, null, 3)", InvalidRequest),
    ("SELECT * FROM events WHERE channel_id = 1 AND bucket = 7 AND id < null", InvalidRequest),
])
def test_unsupported_or_invalid_statements_are_errors_never_accepted(session, statement, error):
    create_schema(session)
    with pytest.raises(error):
        session.execute(statement)


def _raw_frame(version: int, opcode: int, body: bytes = b"") -> bytes:
    return struct.pack(">BBhBi", version, 0, 1, opcode, len(body)) + body


def _raw_response(sock) -> tuple[int, bytes]:
    header = sock.recv(9, socket.MSG_WAITALL)
    _, _, _, opcode, length = struct.unpack(">BBhBi", header)
    return opcode, sock.recv(length, socket.MSG_WAITALL) if length else b""


@pytest.mark.parametrize("frame, message", [
    (_raw_frame(5, 0x05), b"unsupported protocol version"),
    (_raw_frame(4, 0x42), b"unsupported opcode"),
    (_raw_frame(4, 0x07, b"\x00\x00\x00\x05SEL"), b"truncated"),
])
def test_malformed_frames_get_a_protocol_error(cql_nodes, frame, message):
    with socket.create_connection((cql_nodes.contact_points[0], cql_nodes.port), timeout=5) as sock:
        sock.sendall(frame)
        opcode, body = _raw_response(sock)
    assert opcode == 0x00 and struct.unpack(">i", body[:4])[0] == 0x000A
    assert message in body


def test_token_aware_routing_sends_each_partition_to_its_replica(cql_nodes, session):
    create_schema(session, replication_factor=1)
    for node in cql_nodes.nodes:
        node.requests.clear()
    for channel_id in range(40):
        insert_events(session, [1], channel_id=channel_id)
    routed = [(node, token) for node in cql_nodes.nodes for _, table, token in node.requests if table == "events"]
    assert len(routed) == 40
    assert len({node.address for node, _ in routed}) == 3
    assert all(cql_nodes.replicas("ks", token) == [node] for node, token in routed)


def test_consistency_needs_live_replicas(cql_nodes, session):
    create_schema(session)
    write = session.prepare("INSERT INTO events (channel_id, bucket, id) VALUES (?, ?, ?)")
    write.consistency_level = ConsistencyLevel.LOCAL_QUORUM
    cql_nodes.node(2).stop()
    session.execute(write, (1, 7, 1))
    cql_nodes.node(1).stop()
    # The driver may try a down node first and report every host's error together.
    with pytest.raises((Unavailable, NoHostAvailable), match="Cannot achieve consistency level LOCAL_QUORUM"):
        session.execute(write, (1, 7, 2))
    write.consistency_level = ConsistencyLevel.ONE
    session.execute(write, (1, 7, 3))


def test_injected_latency_delays_only_that_node_and_requests_overlap(cql_nodes, session):
    create_schema(session, replication_factor=1)
    insert_events(session, [1])
    for node in cql_nodes.nodes:
        node.inject("latency", delay=0.2)
    select = session.prepare("SELECT id FROM events WHERE channel_id = ? AND bucket = ?")
    started = time.monotonic()
    futures = [session.execute_async(select, (1, 7)) for _ in range(20)]
    assert all([r.id for r in f.result()] == [1] for f in futures)
    assert 0.2 <= time.monotonic() - started < 1.0


def test_subprocess_cluster_is_driven_through_its_control_channel():
    with RemoteCluster(nodes=2, first_address=20) as nodes:
        cluster = connect(nodes)
        try:
            session = cluster.connect()
            create_schema(session, replication_factor=2)
            nodes.node(0).inject("unavailable")
            nodes.node(1).inject("unavailable")
            insert = session.prepare("INSERT INTO events (channel_id, bucket, id) VALUES (?, ?, ?)")
            with pytest.raises(Unavailable):
                session.execute(insert, (1, 7, 1))
            nodes.clear_faults()
            session.execute(insert, (1, 7, 1))
            assert session.execute("SELECT id FROM events WHERE channel_id = 1 AND bucket = 7").one().id == 1
        finally:
            cluster.shutdown()


COMPARISONS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def test_slices_agree_with_a_brute_force_reading_of_cassandra_semantics(session):
    """Random rows and random single-partition queries (equality prefix, range, order, limit, paging) on a
    table with a descending and an ascending clustering column, against the same query done by hand."""
    session.execute("CREATE KEYSPACE ks WITH replication = {'class': 'NetworkTopologyStrategy', 'datacenter1': 1}")
    session.execute("CREATE TABLE ks.grid (p int, a int, b int, v int, PRIMARY KEY (p, a, b)) "
                    "WITH CLUSTERING ORDER BY (a DESC, b ASC)")
    rng = random.Random(11)
    insert = session.prepare("INSERT INTO ks.grid (p, a, b, v) VALUES (1, ?, ?, ?)")
    rows = {(rng.randrange(8), rng.randrange(8)) for _ in range(40)}
    for a, b in rows:
        session.execute(insert, (a, b, a * 10 + b))
    table_order = sorted(rows, key=lambda r: (-r[0], r[1]))
    for _ in range(60):
        where, predicates = ["p = 1"], []
        if rng.random() < 0.5:
            a = rng.randrange(8)
            where.append(f"a = {a}")
            predicates.append(lambda r, a=a: r[0] == a)
            column = 1
        else:
            column = 0
        for symbol in filter(None, (rng.choice([None, ">", ">="]), rng.choice([None, "<", "<="]))):
            bound = rng.randrange(8)
            where.append(f"{'ab'[column]} {symbol} {bound}")
            predicates.append(lambda r, c=column, compare=COMPARISONS[symbol], v=bound: compare(r[c], v))
        descending = rng.choice([None, True, False])
        order = "" if descending is None else f" ORDER BY a {'DESC' if descending else 'ASC'}"
        limit = rng.choice([None, 1, 3, 50])
        query = f"SELECT a, b FROM ks.grid WHERE {' AND '.join(where)}{order}" + (f" LIMIT {limit}" if limit else "")
        expected = [r for r in table_order if all(p(r) for p in predicates)]
        if descending is False:
            expected.reverse()
        expected = expected[:limit]
        statement = SimpleStatement(query, fetch_size=rng.choice([2, 5, 100]))
        assert [(r.a, r.b) for r in session.execute(statement)] == expected, query
