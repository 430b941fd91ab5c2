"""Test nodes speaking the CQL native protocol v4 on loopback addresses, sharing one dataset.

Each node is a gevent StreamServer on ``127.0.0.N:port`` (every node on the same port, as the driver expects).
Requests on a connection are answered concurrently and possibly out of order, like Cassandra, so an injected
delay on one request does not hold back the others.
"""
from __future__ import annotations

import bisect
import collections
import hashlib
import logging
import random
import uuid
from dataclasses import dataclass

import gevent
import gevent.event
import gevent.lock
from gevent import socket
from gevent.server import StreamServer

from . import protocol
from .cql import AlterTableAdd, CqlSyntaxError, CreateKeyspace, CreateTable, Select, Truncate, Use, parse
from .storage import (
    AlreadyExists,
    Dataset,
    InvalidRequest,
    Prepared,
    Rows,
    SchemaChange,
    SetKeyspace,
    partition_key_bytes,
    token_of,
)
from .types import InvalidType

log = logging.getLogger(__name__)

DATACENTER, RACK, RELEASE_VERSION, PARTITIONER = (
    "datacenter1", "rack1", "3.0.8", "org.apache.cassandra.dht.Murmur3Partitioner")
LOCAL_KEYSPACES = frozenset({"system", "system_schema"})
FAULT_KINDS = frozenset({"latency", "read_timeout", "write_timeout", "unavailable", "overloaded", "drop", "stall"})

_LOCAL_CONSISTENCY = {0: 1, 1: 1, 10: 1, 2: 2, 3: 3}  # ANY, ONE, LOCAL_ONE, TWO, THREE
_ALL = 5


@dataclass
class Fault:
    """What a node does to matching data requests: ``kind`` after ``delay`` seconds, ``times`` times
    (None: until cleared). ``applies_to`` is "reads", "writes" or "all"."""
    kind: str
    delay: float = 0.0
    times: int | None = None
    applies_to: str = "all"

    def matches(self, is_write: bool) -> bool:
        return self.applies_to == "all" or (self.applies_to == "writes") == is_write


class StatementError(Exception):
    def __init__(self, body: bytes):
        super().__init__(body)
        self.body = body


class Node:
    def __init__(self, cluster: CqlTestCluster, address: str, tokens: list[int]):
        self.cluster, self.address, self.tokens = cluster, address, tokens
        self.host_id = uuid.uuid5(uuid.NAMESPACE_DNS, address)
        self.faults: list[Fault] = []
        self.prepared: dict[bytes, Prepared] = {}
        #: (opcode, table, token) of recent data requests, for tests of routing.
        self.requests: collections.deque = collections.deque(maxlen=10_000)
        self._server: StreamServer | None = None
        self._connections: set[_Connection] = set()
        self.stall_released = gevent.event.Event()
        self.system = Dataset(cluster.dataset.now, with_schema_tables=False)
        self._define_system_tables()

    @property
    def is_up(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        """Listen (again). A restarted node has forgotten its prepared statements, like a real one."""
        if self._server is not None:
            return
        self.prepared.clear()
        self.stall_released = gevent.event.Event()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.address, self.cluster.port))
            listener.listen(128)
        except OSError:
            listener.close()
            raise
        self._server = StreamServer(listener, self._serve)
        self._server.start()
        self.cluster.broadcast_status(self, "UP")

    def stop(self) -> None:
        """Go down: stop listening and drop every connection."""
        if self._server is None:
            return
        self._server.close()
        self._server = None
        self.stall_released.set()
        for connection in list(self._connections):
            connection.close()
        self.cluster.broadcast_status(self, "DOWN")

    def inject(self, kind: str, *, delay: float = 0.0, times: int | None = None, applies_to: str = "all") -> None:
        if kind not in FAULT_KINDS or applies_to not in ("reads", "writes", "all"):
            raise ValueError(f"unknown fault {kind!r} for {applies_to!r}")
        self.faults.append(Fault(kind, delay, times, applies_to))

    def clear_faults(self) -> None:
        self.faults.clear()
        self.stall_released.set()
        self.stall_released = gevent.event.Event()

    def take_fault(self, is_write: bool) -> Fault | None:
        for fault in self.faults:
            if fault.matches(is_write):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                return fault
        return None

    def _serve(self, sock, address) -> None:
        connection = _Connection(self, sock)
        self._connections.add(connection)
        try:
            connection.run()
        finally:
            self._connections.discard(connection)

    # -- system keyspace (node-local, as in Cassandra) ---------------------------------------------------

    def _define_system_tables(self) -> None:
        from .storage import Keyspace
        self.system.keyspaces["system"] = Keyspace("system", {"class": "LocalStrategy"})
        common = [("data_center", "text"), ("host_id", "uuid"), ("rack", "text"), ("release_version", "text"),
                  ("rpc_address", "inet"), ("schema_version", "uuid"), ("tokens", "set<text>")]
        self.system.add_table("system", "local", [("key", "text")], [], common + [
            ("bootstrapped", "text"), ("broadcast_address", "inet"), ("cluster_name", "text"),
            ("cql_version", "text"), ("listen_address", "inet"), ("native_protocol_version", "text"),
            ("partitioner", "text")], frozenset(), {})
        self.system.add_table("system", "peers", [("peer", "inet")], [], common + [("preferred_ip", "inet")],
                              frozenset(), {})

    def refresh_system_tables(self) -> None:
        """Write this node's view of the ring; the schema version is the shared dataset's."""
        def describe(node: Node) -> dict:
            return {"data_center": DATACENTER, "host_id": node.host_id, "rack": RACK,
                    "release_version": RELEASE_VERSION, "rpc_address": node.address,
                    "schema_version": self.cluster.dataset.schema_version,
                    "tokens": frozenset(str(t) for t in node.tokens)}
        self.system.write_row("local", ("local",), (), {
            **describe(self), "bootstrapped": "COMPLETED", "broadcast_address": self.address,
            "cluster_name": "cqlnode", "cql_version": "3.3.1", "listen_address": self.address,
            "native_protocol_version": str(protocol.PROTOCOL_VERSION), "partitioner": PARTITIONER},
            keyspace="system")
        for peer in self.cluster.nodes:
            if peer is not self:
                self.system.write_row("peers", (peer.address,), (), describe(peer), keyspace="system")


class _Connection:
    def __init__(self, node: Node, sock):
        self.node, self.sock = node, sock
        self.keyspace: str | None = None
        self.events: set[str] = set()
        self._write_lock = gevent.lock.Semaphore()
        self._requests: set[gevent.Greenlet] = set()
        self.closed = False

    def run(self) -> None:
        try:
            while not self.closed:
                header = self._read_exactly(protocol.HEADER.size)
                if header is None:
                    return
                version, flags, stream, opcode, length = protocol.HEADER.unpack(header)
                if length < 0 or length > protocol.MAX_BODY:
                    self.send(stream, protocol.ERROR, protocol.error(protocol.PROTOCOL_ERROR, "invalid frame length"))
                    return
                body = self._read_exactly(length)
                if body is None:
                    return
                if version != protocol.PROTOCOL_VERSION:
                    self.send(stream, protocol.ERROR, protocol.error(
                        protocol.PROTOCOL_ERROR, f"Invalid or unsupported protocol version ({version & 0x7F}); "
                                                 "supported versions are (4/v4)"))
                    continue
                if flags:
                    self.send(stream, protocol.ERROR, protocol.error(
                        protocol.PROTOCOL_ERROR, f"frame flags {flags:#x} (compression, tracing, custom payload) "
                                                 "are not supported by this node"))
                    continue
                request = gevent.spawn(self._respond, stream, opcode, body)
                self._requests.add(request)
                request.link(self._requests.discard)
        except OSError:
            return
        finally:
            self.close()

    def _read_exactly(self, size: int) -> bytes | None:
        chunks, remaining = [], size
        while remaining:
            chunk = self.sock.recv(remaining)
            if not chunk:
                return None
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def send(self, stream: int, opcode: int, body: bytes) -> None:
        if self.closed:
            return
        with self._write_lock:
            try:
                self.sock.sendall(protocol.frame(stream, opcode, body))
            except OSError:
                self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for request in list(self._requests):
            if request is not gevent.getcurrent():
                request.kill(block=False)

    def _respond(self, stream: int, opcode: int, body: bytes) -> None:
        try:
            opcode, body = self._handle(opcode, protocol.Reader(body))
        except protocol.ProtocolViolation as exc:
            opcode, body = protocol.ERROR, protocol.error(protocol.PROTOCOL_ERROR, str(exc))
        except StatementError as exc:
            opcode, body = protocol.ERROR, exc.body
        except _Dropped:
            self.close()
            return
        except Exception as exc:  # a bug in the node: report it to the client rather than hang it
            log.exception("cqlnode failed on opcode %#x", opcode)
            opcode, body = protocol.ERROR, protocol.error(protocol.SERVER_ERROR, f"cqlnode: {exc!r}")
        self.send(stream, opcode, body)

    def _handle(self, opcode: int, reader: protocol.Reader) -> tuple[int, bytes]:
        if opcode == protocol.OPTIONS:
            return protocol.SUPPORTED, protocol.supported()
        if opcode == protocol.STARTUP:
            options = reader.string_map()
            if options.get("COMPRESSION"):
                raise protocol.ProtocolViolation("compression is not supported by this node")
            return protocol.READY, b""
        if opcode == protocol.REGISTER:
            self.events.update(reader.string_list())
            return protocol.READY, b""
        if opcode == protocol.QUERY:
            text = reader.long_string()
            parameters = protocol.read_query_parameters(reader)
            reader.finish()
            return protocol.RESULT, self._query(text, parameters)
        if opcode == protocol.PREPARE:
            text = reader.long_string()
            reader.finish()
            return protocol.RESULT, self._prepare(text)
        if opcode == protocol.EXECUTE:
            query_id = reader.short_bytes()
            parameters = protocol.read_query_parameters(reader)
            reader.finish()
            prepared = self.node.prepared.get(query_id)
            if prepared is None:
                raise StatementError(protocol.error(protocol.UNPREPARED, "Prepared query not found",
                                                    protocol.short_bytes(query_id)))
            return protocol.RESULT, self._run([(prepared, parameters.values)], parameters)
        if opcode == protocol.BATCH:
            return protocol.RESULT, self._batch(reader)
        raise protocol.ProtocolViolation(f"unsupported opcode {opcode:#x}")

    # -- statements ---------------------------------------------------------------------------------------

    def _parse(self, text: str):
        try:
            return parse(text)
        except CqlSyntaxError as exc:
            raise StatementError(protocol.error(protocol.SYNTAX_ERROR, f"line 1: {exc}")) from None

    def _query(self, text: str, parameters: protocol.QueryParameters) -> bytes:
        statement = self._parse(text)
        dataset = self.node.cluster.dataset
        with _statement_errors():
            if isinstance(statement, Use):
                dataset.keyspace(statement.keyspace)
                self.keyspace = statement.keyspace
                return protocol.result(SetKeyspace(statement.keyspace))
            if isinstance(statement, (CreateKeyspace, CreateTable, AlterTableAdd)):
                if isinstance(statement, CreateKeyspace):
                    change = dataset.create_keyspace(statement)
                elif isinstance(statement, AlterTableAdd):
                    change = dataset.alter_table_add(statement, self.keyspace)
                else:
                    change = dataset.create_table(statement, self.keyspace)
                if change is None:
                    return protocol.result(None)
                self.node.cluster.broadcast_schema_change(change)
                return protocol.result(change)
            if isinstance(statement, Truncate):
                dataset.truncate(statement, self.keyspace)
                return protocol.result(None)
            prepared = self._dataset_for(statement).prepare(statement, self.keyspace)
        return self._run([(prepared, parameters.values)], parameters)

    def _dataset_for(self, statement) -> Dataset:
        if (statement.table.keyspace or self.keyspace) == "system":
            self.node.refresh_system_tables()
            return self.node.system
        return self.node.cluster.dataset

    def _prepare(self, text: str) -> bytes:
        statement = self._parse(text)
        if isinstance(statement, (Use, CreateKeyspace, CreateTable, AlterTableAdd, Truncate)):
            raise StatementError(protocol.error(protocol.INVALID, "this node prepares DML and SELECT only"))
        with _statement_errors():
            prepared = self._dataset_for(statement).prepare(statement, self.keyspace)
        query_id = hashlib.md5(((self.keyspace or "") + text).encode()).digest()
        self.node.prepared[query_id] = prepared
        return protocol.prepared(query_id, prepared.markers, prepared.partition_key_markers, prepared.result_columns)

    def _batch(self, reader: protocol.Reader) -> bytes:
        batch_type = reader.byte()
        if batch_type not in (0, 1):
            raise protocol.ProtocolViolation("only LOGGED and UNLOGGED batches are supported")
        statements = []
        for _ in range(reader.short()):
            kind = reader.byte()
            if kind == 0:
                statement = self._parse(reader.long_string())
                with _statement_errors():
                    prepared = self._dataset_for(statement).prepare(statement, self.keyspace)
            elif kind == 1:
                query_id = reader.short_bytes()
                prepared = self.node.prepared.get(query_id)
                if prepared is None:
                    raise StatementError(protocol.error(protocol.UNPREPARED, "Prepared query not found",
                                                        protocol.short_bytes(query_id)))
            else:
                raise protocol.ProtocolViolation(f"unknown batch statement kind {kind}")
            if isinstance(prepared.statement, Select):
                raise StatementError(protocol.error(protocol.INVALID, "SELECT is not allowed in a BATCH"))
            statements.append((prepared, [reader.value() for _ in range(reader.short())]))
        consistency = reader.short()
        flags = reader.byte()
        if flags & ~0x30:
            raise protocol.ProtocolViolation(f"unsupported batch flags {flags:#x}")
        parameters = protocol.QueryParameters(consistency, [])
        if flags & 0x10:
            parameters.serial_consistency = reader.short()
        if flags & 0x20:
            parameters.timestamp = reader.long()
        reader.finish()
        if any(getattr(p.statement, "if_not_exists", False) or getattr(p.statement, "if_exists", False)
               for p, _ in statements):
            raise StatementError(protocol.error(protocol.INVALID, "this node does not run conditional batches"))
        return self._run(statements, parameters, write_type="BATCH" if batch_type == 0 else "UNLOGGED_BATCH")

    def _run(self, statements: list[tuple[Prepared, list]], parameters: protocol.QueryParameters,
             write_type: str = "SIMPLE") -> bytes:
        """Decode the values, check availability, apply faults, then execute (atomically, without yielding)."""
        cluster = self.node.cluster
        decoded = []
        for prepared, raw_values in statements:
            if len(raw_values) != len(prepared.markers):
                raise StatementError(protocol.error(
                    protocol.INVALID, f"There were {len(prepared.markers)} markers(?) in CQL but "
                                      f"{len(raw_values)} bound variables"))
            dataset = self.node.system if _keyspace_of(prepared) == "system" else cluster.dataset
            with _statement_errors():
                values = [spec[3].deserialize(raw) if isinstance(raw, bytes) else raw
                          for spec, raw in zip(prepared.markers, raw_values)]
                decoded.append((dataset, prepared, values, dataset.partition_key_of(prepared, values)))
        if any(_keyspace_of(prepared) not in LOCAL_KEYSPACES for _, prepared, _, _ in decoded):
            for _, prepared, _, located in decoded:
                if located is not None:
                    schema, key = located
                    token = token_of(partition_key_bytes(schema, key))
                    self.node.requests.append((type(prepared.statement).__name__, schema.name, token))
                    cluster.check_available(schema.keyspace, token, parameters)
            self._apply_fault(not isinstance(decoded[0][1].statement, Select), parameters.consistency, write_type)
        results = []
        with _statement_errors():
            for dataset, prepared, values, _ in decoded:
                results.append(dataset.execute(prepared, values, timestamp=parameters.timestamp,
                                               page_size=parameters.page_size,
                                               paging_state=parameters.paging_state))
        outcome = results[0] if len(results) == 1 else None
        return protocol.result(outcome, skip_metadata=parameters.skip_metadata and isinstance(outcome, Rows)
                               and isinstance(decoded[0][1].statement, Select))

    def _apply_fault(self, is_write: bool, consistency: int, write_type: str) -> None:
        fault = self.node.take_fault(is_write)
        if fault is None:
            return
        if fault.delay:
            gevent.sleep(fault.delay)
        if fault.kind == "stall":
            self.node.stall_released.wait()
            raise _Dropped()
        if fault.kind == "drop":
            raise _Dropped()
        # The counts a coordinator of a three-replica keyspace would report.
        block_for = self.node.cluster.required_replicas(consistency, 3)
        if fault.kind == "read_timeout":
            raise StatementError(protocol.read_timeout(consistency, block_for - 1, block_for, False))
        if fault.kind == "write_timeout":
            raise StatementError(protocol.write_timeout(consistency, block_for - 1, block_for, write_type))
        if fault.kind == "unavailable":
            raise StatementError(protocol.unavailable(consistency, block_for, block_for - 1))
        if fault.kind == "overloaded":
            raise StatementError(protocol.error(protocol.OVERLOADED, "Too many in flight requests"))


def _keyspace_of(prepared: Prepared) -> str | None:
    return prepared.statement.table.keyspace or prepared.keyspace


class _Dropped(Exception):
    """The node closes the connection instead of answering."""


class _statement_errors:
    """Turn dataset exceptions into the error frames Cassandra would send."""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, traceback):
        if isinstance(exc, (InvalidRequest, InvalidType)):
            raise StatementError(protocol.error(protocol.INVALID, str(exc))) from None
        if isinstance(exc, AlreadyExists):
            raise StatementError(protocol.error(protocol.ALREADY_EXISTS, str(exc),
                                                protocol.string(exc.keyspace) + protocol.string(exc.table))) from None
        return False


class CqlTestCluster:
    """Several nodes on 127.0.0.2, 127.0.0.3, ... sharing one dataset and a Murmur3 token ring."""

    def __init__(self, nodes: int = 1, *, port: int = 0, tokens_per_node: int = 8, seed: int = 0,
                 first_address: int = 2):
        self.dataset = Dataset()
        self.port = port
        rng = random.Random(seed)
        self.nodes = [Node(self, f"127.0.0.{first_address + i}",
                           sorted(rng.randint(-2**63 + 1, 2**63 - 1) for _ in range(tokens_per_node)))
                      for i in range(nodes)]
        self._ring = sorted((token, node) for node in self.nodes for token in node.tokens)
        self._ring_tokens = [token for token, _ in self._ring]

    @property
    def contact_points(self) -> list[str]:
        return [node.address for node in self.nodes]

    def start(self) -> CqlTestCluster:
        chosen = self.port
        for _ in range(5):
            self.port = chosen or _free_port_on_all([n.address for n in self.nodes])
            try:
                for node in self.nodes:
                    node.start()
                return self
            except OSError:
                # Another process took the port between choosing and binding: choose again.
                self.stop()
                if chosen:
                    raise
        raise RuntimeError("no port could be bound on every node address")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> CqlTestCluster:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def node(self, address_or_index) -> Node:
        if isinstance(address_or_index, int):
            return self.nodes[address_or_index]
        return next(n for n in self.nodes if n.address == address_or_index)

    def clear_faults(self) -> None:
        for node in self.nodes:
            node.clear_faults()

    def advance_clock(self, seconds: float) -> None:
        """Move the nodes' clock forward, so that TTLs expire without waiting."""
        self.dataset.clock_offset += seconds

    def replicas(self, keyspace: str, token: int) -> list[Node]:
        """The nodes owning ``token``: walk the ring clockwise from it (one datacenter, one rack)."""
        replication_factor = min(self.dataset.keyspace(keyspace).replication_factor(DATACENTER), len(self.nodes))
        owners: list[Node] = []
        start = bisect.bisect_left(self._ring_tokens, token)
        for offset in range(len(self._ring)):
            node = self._ring[(start + offset) % len(self._ring)][1]
            if node not in owners:
                owners.append(node)
                if len(owners) == replication_factor:
                    break
        return owners

    def partition_replicas(self, keyspace: str, table: str, key: tuple) -> list[Node]:
        """The nodes owning the partition ``key`` of ``table``, in the order a token-aware driver tries them."""
        schema = self.dataset.keyspace(keyspace).tables[table]
        return self.replicas(keyspace, token_of(partition_key_bytes(schema, key)))

    @staticmethod
    def required_replicas(consistency: int, replication_factor: int) -> int:
        if consistency == _ALL:
            return replication_factor
        return _LOCAL_CONSISTENCY.get(consistency, replication_factor // 2 + 1)

    def check_available(self, keyspace: str, token: int, parameters: protocol.QueryParameters) -> None:
        replicas = self.replicas(keyspace, token)
        alive = sum(1 for node in replicas if node.is_up)
        for consistency in filter(lambda c: c is not None, (parameters.consistency, parameters.serial_consistency)):
            required = self.required_replicas(consistency, len(replicas))
            if alive < required:
                raise StatementError(protocol.unavailable(consistency, required, alive))

    def broadcast_status(self, changed: Node, status: str) -> None:
        body = protocol.string("STATUS_CHANGE") + protocol.string(status) + protocol.inet(changed.address, self.port)
        self._broadcast("STATUS_CHANGE", body, skip=changed)

    def broadcast_schema_change(self, change: SchemaChange) -> None:
        self._broadcast("SCHEMA_CHANGE", protocol.string("SCHEMA_CHANGE") + protocol.schema_change(change))

    def _broadcast(self, event: str, body: bytes, skip: Node | None = None) -> None:
        for node in self.nodes:
            if node is skip:
                continue
            for connection in list(node._connections):
                if event in connection.events:
                    connection.send(-1, protocol.EVENT, body)


def _free_port_on_all(addresses: list[str]) -> int:
    """A port free on every address (nodes share one port, as in a real cluster)."""
    for _ in range(50):
        probe = socket.socket()
        probe.bind((addresses[0], 0))
        port = probe.getsockname()[1]
        probe.close()
        try:
            for address in addresses:
                check = socket.socket()
                check.bind((address, port))
                check.close()
            return port
        except OSError:
            continue
    raise RuntimeError("no port free on every node address")
