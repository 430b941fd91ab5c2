"""Native protocol v4 framing: reading request bodies and writing response bodies.

Reference: Cassandra's doc/native_protocol_v4.spec. Only uncompressed frames without tracing or custom payloads.
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from .storage import UNSET, Rows, SchemaChange, SetKeyspace

PROTOCOL_VERSION = 4
HEADER = struct.Struct(">BBhBi")
MAX_BODY = 256 * 1024 * 1024

# opcodes
ERROR, STARTUP, READY, OPTIONS, SUPPORTED, QUERY, RESULT, PREPARE, EXECUTE, REGISTER, EVENT, BATCH = (
    0x00, 0x01, 0x02, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D)

# error codes
SERVER_ERROR, PROTOCOL_ERROR, UNAVAILABLE, OVERLOADED = 0x0000, 0x000A, 0x1000, 0x1001
WRITE_TIMEOUT, READ_TIMEOUT, SYNTAX_ERROR, INVALID, ALREADY_EXISTS, UNPREPARED = (
    0x1100, 0x1200, 0x2000, 0x2200, 0x2400, 0x2500)

CONSISTENCY_NAMES = {0: "ANY", 1: "ONE", 2: "TWO", 3: "THREE", 4: "QUORUM", 5: "ALL", 6: "LOCAL_QUORUM",
                     7: "EACH_QUORUM", 8: "SERIAL", 9: "LOCAL_SERIAL", 10: "LOCAL_ONE"}

_UNSET_LENGTH = -2


class ProtocolViolation(Exception):
    """The request cannot be decoded; answered with a protocol error."""


class Reader:
    def __init__(self, body: bytes):
        self.body, self.offset = body, 0

    def _take(self, size: int) -> bytes:
        if size < 0 or self.offset + size > len(self.body):
            raise ProtocolViolation("truncated message body")
        chunk = self.body[self.offset:self.offset + size]
        self.offset += size
        return chunk

    def byte(self) -> int:
        return self._take(1)[0]

    def short(self) -> int:
        return struct.unpack(">H", self._take(2))[0]

    def int(self) -> int:
        return struct.unpack(">i", self._take(4))[0]

    def long(self) -> int:
        return struct.unpack(">q", self._take(8))[0]

    def string(self) -> str:
        return self._take(self.short()).decode()

    def long_string(self) -> str:
        return self._take(self.int()).decode()

    def short_bytes(self) -> bytes:
        return self._take(self.short())

    def value(self):
        """A [value]: bytes, None (null) or storage.UNSET."""
        size = self.int()
        if size == -1:
            return None
        if size == _UNSET_LENGTH:
            return UNSET
        return self._take(size)

    def bytes(self) -> bytes | None:
        size = self.int()
        return None if size < 0 else self._take(size)

    def string_map(self) -> dict[str, str]:
        return {self.string(): self.string() for _ in range(self.short())}

    def string_list(self) -> list[str]:
        return [self.string() for _ in range(self.short())]

    def finish(self) -> None:
        if self.offset != len(self.body):
            raise ProtocolViolation("unexpected bytes after the message body")


@dataclass
class QueryParameters:
    consistency: int
    values: list
    skip_metadata: bool = False
    page_size: int | None = None
    paging_state: bytes | None = None
    serial_consistency: int | None = None
    timestamp: int | None = None


def read_query_parameters(reader: Reader) -> QueryParameters:
    consistency = reader.short()
    flags = reader.byte()
    if flags & 0x40:
        raise ProtocolViolation("named values are not supported by this node")
    if flags & ~0x3F:
        raise ProtocolViolation(f"unknown query flags {flags:#x}")
    parameters = QueryParameters(consistency, [])
    if flags & 0x01:
        parameters.values = [reader.value() for _ in range(reader.short())]
    parameters.skip_metadata = bool(flags & 0x02)
    if flags & 0x04:
        parameters.page_size = reader.int()
    if flags & 0x08:
        parameters.paging_state = reader.bytes()
    if flags & 0x10:
        parameters.serial_consistency = reader.short()
    if flags & 0x20:
        parameters.timestamp = reader.long()
    return parameters


# -- writing ------------------------------------------------------------------------------------------------

def frame(stream: int, opcode: int, body: bytes) -> bytes:
    return HEADER.pack(0x80 | PROTOCOL_VERSION, 0, stream, opcode, len(body)) + body


def string(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">H", len(data)) + data


def short_bytes(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def value_bytes(data: bytes | None) -> bytes:
    return struct.pack(">i", -1) if data is None else struct.pack(">i", len(data)) + data


def inet(address: str, port: int) -> bytes:
    packed = ipaddress.ip_address(address).packed
    return bytes([len(packed)]) + packed + struct.pack(">i", port)


def supported() -> bytes:
    options = {"CQL_VERSION": ["3.3.1"], "COMPRESSION": []}
    body = struct.pack(">H", len(options))
    for key, values in options.items():
        body += string(key) + struct.pack(">H", len(values)) + b"".join(string(v) for v in values)
    return body


def error(code: int, message: str, extra: bytes = b"") -> bytes:
    return struct.pack(">i", code) + string(message) + extra


def unavailable(consistency: int, required: int, alive: int) -> bytes:
    return error(UNAVAILABLE, "Cannot achieve consistency level " + CONSISTENCY_NAMES.get(consistency, "?"),
                 struct.pack(">Hii", consistency, required, alive))


def write_timeout(consistency: int, received: int, block_for: int, write_type: str) -> bytes:
    return error(WRITE_TIMEOUT, f"Operation timed out - received only {received} responses.",
                 struct.pack(">Hii", consistency, received, block_for) + string(write_type))


def read_timeout(consistency: int, received: int, block_for: int, data_present: bool) -> bytes:
    return error(READ_TIMEOUT, f"Operation timed out - received only {received} responses.",
                 struct.pack(">HiiB", consistency, received, block_for, data_present))


def _column_specs(columns) -> bytes:
    """Column specifications with a global table spec when every column comes from one table."""
    tables = {(keyspace, table) for keyspace, table, _, _ in columns}
    if len(tables) == 1:
        keyspace, table = tables.pop()
        return 0x0001, string(keyspace) + string(table) + b"".join(
            string(name) + column_type.encode_spec() for _, _, name, column_type in columns)
    return 0, b"".join(string(k) + string(t) + string(n) + ct.encode_spec() for k, t, n, ct in columns)


def rows_metadata(columns, paging_state: bytes | None = None, skip_metadata: bool = False) -> bytes:
    flags, specs = (0x0004, b"") if skip_metadata or not columns else _column_specs(columns)
    if paging_state is not None:
        flags |= 0x0002
    body = struct.pack(">ii", flags, len(columns))
    if paging_state is not None:
        body += value_bytes(paging_state)
    return body + specs


def result(outcome, skip_metadata: bool = False) -> bytes:
    if outcome is None:
        return struct.pack(">i", 0x0001)
    if isinstance(outcome, Rows):
        body = [struct.pack(">i", 0x0002), rows_metadata(outcome.columns, outcome.paging_state, skip_metadata),
                struct.pack(">i", len(outcome.rows))]
        for row in outcome.rows:
            for (_, _, _, column_type), cell in zip(outcome.columns, row):
                body.append(value_bytes(None if cell is None else column_type.serialize(cell)))
        return b"".join(body)
    if isinstance(outcome, SetKeyspace):
        return struct.pack(">i", 0x0003) + string(outcome.keyspace)
    if isinstance(outcome, SchemaChange):
        return struct.pack(">i", 0x0005) + schema_change(outcome)
    raise TypeError(f"no RESULT encoding for {outcome!r}")


def schema_change(change: SchemaChange) -> bytes:
    body = string(change.change) + string(change.target) + string(change.keyspace)
    return body + string(change.table) if change.target == "TABLE" else body


def prepared(query_id: bytes, markers, partition_key_markers, result_columns) -> bytes:
    flags, specs = _column_specs(markers) if markers else (0, b"")
    body = struct.pack(">i", 0x0004) + short_bytes(query_id)
    body += struct.pack(">iii", flags, len(markers), len(partition_key_markers))
    body += b"".join(struct.pack(">H", index) for index in partition_key_markers) + specs
    return body + rows_metadata(result_columns)
