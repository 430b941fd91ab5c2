"""The dataset every node of a test cluster shares: schemas, partitions, and Cassandra's write semantics.

What is kept from Cassandra, because the message store's correctness depends on it:
- every cell carries its write timestamp; the newest write wins (a tombstone wins a tie);
- INSERT writes a row marker, UPDATE does not: an UPDATE of a deleted row recreates it with only the updated
  cells (the partial row of the edit/delete race);
- deletes leave tombstones (partition, clustering prefix, row or cell) that shadow older writes arriving later;
- TTLs expire cells and row markers; a row is visible while its marker or one of its cells is live.
"""
from __future__ import annotations

import bisect
import functools
import json
import time
import uuid
from dataclasses import dataclass, field

from cassandra.murmur3 import murmur3

from .cql import CreateKeyspace, CreateTable, Delete, Insert, Marker, Relation, Select, TableRef, Truncate, Update
from .types import CqlType, InvalidType, parse_type

UNSET = object()


class InvalidRequest(Exception):
    pass


class AlreadyExists(Exception):
    def __init__(self, keyspace: str, table: str = ""):
        super().__init__(f"{keyspace}.{table} already exists" if table else f"keyspace {keyspace} already exists")
        self.keyspace, self.table = keyspace, table


# -- schema -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    name: str
    type: CqlType
    kind: str  # partition_key | clustering | regular
    position: int


@dataclass
class TableSchema:
    keyspace: str
    name: str
    columns: dict[str, Column]
    descending: frozenset[str] = frozenset()
    options: dict = field(default_factory=dict)

    @functools.cached_property
    def partition_key(self) -> list[Column]:
        return [c for c in self.columns.values() if c.kind == "partition_key"]

    @functools.cached_property
    def clustering(self) -> list[Column]:
        return [c for c in self.columns.values() if c.kind == "clustering"]

    def column(self, name: str) -> Column:
        try:
            return self.columns[name]
        except KeyError:
            raise InvalidRequest(f"Undefined column name {name} in table {self.keyspace}.{self.name}") from None

    def clustering_order_key(self, values: tuple, offset: int = 0) -> tuple:
        """A sort key that orders clustering values (from column ``offset`` on) in the table's order."""
        return tuple(_Ordered(v, c.name in self.descending) for c, v in zip(self.clustering[offset:], values))


@functools.total_ordering
class _Ordered:
    """A clustering value placed in its column's order (descending columns sort backwards)."""
    __slots__ = ("value", "descending")

    def __init__(self, value, descending: bool):
        self.value, self.descending = value, descending

    def __eq__(self, other):
        return isinstance(other, _Ordered) and self.value == other.value

    def __lt__(self, other):
        if not isinstance(other, _Ordered):
            return NotImplemented
        return self.value > other.value if self.descending else self.value < other.value


class _AfterAll:
    """Sorts after every value: ``prefix + (_AFTER_ALL,)`` bisects to just past the rows starting with prefix."""

    def __eq__(self, other):
        return other is self

    def __lt__(self, other):
        return False

    def __gt__(self, other):
        return other is not self


_AFTER_ALL = _AfterAll()


@dataclass
class Keyspace:
    name: str
    replication: dict[str, str]
    durable_writes: bool = True
    tables: dict[str, TableSchema] = field(default_factory=dict)

    def replication_factor(self, datacenter: str) -> int:
        if self.replication.get("class", "").endswith("SimpleStrategy"):
            return int(self.replication.get("replication_factor", 1))
        return int(self.replication.get(datacenter, 0))


# -- data ---------------------------------------------------------------------------------------------------

@dataclass
class Cell:
    value: object  # None: a tombstone
    timestamp: int
    expires_at: float | None = None

    def is_live(self, now: float) -> bool:
        return self.value is not None and (self.expires_at is None or self.expires_at > now)


@dataclass
class Row:
    marker: Cell | None = None
    cells: dict[str, Cell] = field(default_factory=dict)

    def is_live(self, now: float) -> bool:
        return ((self.marker is not None and self.marker.is_live(now))
                or any(c.is_live(now) for c in self.cells.values()))


class Partition:
    """One partition's rows, kept in clustering order, and the tombstones over them."""

    def __init__(self, schema: TableSchema):
        self.schema = schema
        self.rows: dict[tuple, Row] = {}
        #: clustering prefix (``()`` for the whole partition) -> timestamp of the newest tombstone over it
        self.tombstones: dict[tuple, int] = {}
        #: the clustering keys in the table's order, and their sort keys (for bisection)
        self.keys: list[tuple] = []
        self.order_keys: list[tuple] = []

    def deleted_at(self, clustering: tuple) -> int:
        return max((self.tombstones.get(clustering[:n], -1) for n in range(len(clustering) + 1)), default=-1)

    def write(self, clustering: tuple, column: str | None, cell: Cell) -> None:
        """Write one cell (``column`` None: the row marker) unless a newer write or tombstone shadows it."""
        if cell.timestamp <= self.deleted_at(clustering):
            return
        row = self.rows.get(clustering)
        if row is None:
            row = self.rows[clustering] = Row()
            order_key = self.schema.clustering_order_key(clustering)
            index = bisect.bisect_left(self.order_keys, order_key)
            self.keys.insert(index, clustering)
            self.order_keys.insert(index, order_key)
        current = row.marker if column is None else row.cells.get(column)
        if current is not None and (current.timestamp > cell.timestamp
                                    or (current.timestamp == cell.timestamp and current.value is None)):
            return
        if column is None:
            row.marker = cell
        else:
            row.cells[column] = cell

    def delete(self, prefix: tuple, timestamp: int) -> None:
        self.tombstones[prefix] = max(self.tombstones.get(prefix, -1), timestamp)
        start, end = self.span(prefix)
        for index in range(end - 1, start - 1, -1):
            row = self.rows[self.keys[index]]
            if row.marker is not None and row.marker.timestamp <= timestamp:
                row.marker = None
            row.cells = {name: cell for name, cell in row.cells.items() if cell.timestamp > timestamp}
            if row.marker is None and not row.cells:
                del self.rows[self.keys[index]]
                del self.keys[index], self.order_keys[index]

    def span(self, prefix: tuple, low=None, high=None) -> tuple[int, int]:
        """Indices (start, end) of the rows whose key starts with ``prefix`` and whose next component lies
        between ``low`` and ``high`` (inclusive, each optional, in the table's order)."""
        ordered_prefix = self.schema.clustering_order_key(prefix)
        column = len(prefix)
        start_probe, end_probe = ordered_prefix, ordered_prefix + (_AFTER_ALL,)
        if low is not None:
            start_probe = ordered_prefix + self.schema.clustering_order_key((low,), offset=column)
        if high is not None:
            end_probe = ordered_prefix + self.schema.clustering_order_key((high,), offset=column) + (_AFTER_ALL,)
        return bisect.bisect_left(self.order_keys, start_probe), bisect.bisect_left(self.order_keys, end_probe)


# -- results ------------------------------------------------------------------------------------------------

@dataclass
class Rows:
    columns: list[tuple[str, str, str, CqlType]]  # keyspace, table, column, type
    rows: list[list]
    paging_state: bytes | None = None


@dataclass
class SchemaChange:
    change: str  # CREATED
    target: str  # KEYSPACE | TABLE
    keyspace: str
    table: str = ""


@dataclass
class SetKeyspace:
    keyspace: str


@dataclass
class Prepared:
    """A parsed statement resolved against the schema: what each marker binds and which are the partition key."""
    statement: object
    keyspace: str | None
    markers: list[tuple[str, str, str, CqlType]]
    partition_key_markers: list[int]
    result_columns: list[tuple[str, str, str, CqlType]]


APPLIED = CqlType("boolean")
_SCHEMA_KEYSPACE = "system_schema"
_TABLE_FLAGS = frozenset({"compound"})


def partition_key_bytes(schema: TableSchema, key: tuple) -> bytes:
    """The partition key as the driver serializes it for routing (composite keys: length, bytes, 0 each)."""
    parts = [c.type.serialize(v) for c, v in zip(schema.partition_key, key)]
    if len(parts) == 1:
        return parts[0]
    return b"".join(len(p).to_bytes(2, "big") + p + b"\x00" for p in parts)


def token_of(key_bytes: bytes) -> int:
    return murmur3(key_bytes)


class Dataset:
    """Schemas and data shared by every node of a test cluster. Methods run without yielding to other
    greenlets, so each statement (lightweight transactions included) is atomic."""

    def __init__(self, clock=time.time, *, with_schema_tables: bool = True):
        self._clock = clock
        self.clock_offset = 0.0
        self.keyspaces: dict[str, Keyspace] = {}
        self.data: dict[tuple[str, str], dict[tuple, Partition]] = {}
        self.schema_version = uuid.uuid4()
        if with_schema_tables:
            self._define_schema_tables()

    def now(self) -> float:
        return self._clock() + self.clock_offset

    # -- schema -------------------------------------------------------------------------------------------

    def _define_schema_tables(self) -> None:
        """system_schema is an ordinary keyspace here: DDL writes its rows, the driver reads them with SELECT."""
        self.keyspaces[_SCHEMA_KEYSPACE] = Keyspace(_SCHEMA_KEYSPACE, {"class": "LocalStrategy"})
        text = "text"
        definitions = {
            "keyspaces": ([("keyspace_name", text)], [], [("durable_writes", "boolean"),
                                                           ("replication", "frozen<map<text, text>>")]),
            "tables": ([("keyspace_name", text)], [("table_name", text)], [
                ("flags", "frozen<set<text>>"), ("comment", text), ("default_time_to_live", "int"),
                ("gc_grace_seconds", "int"), ("id", "uuid")]),
            "columns": ([("keyspace_name", text)], [("table_name", text), ("column_name", text)], [
                ("clustering_order", text), ("column_name_bytes", "blob"), ("kind", text), ("position", "int"),
                ("type", text)]),
            "types": ([("keyspace_name", text)], [("type_name", text)], []),
            "functions": ([("keyspace_name", text)], [("function_name", text)], []),
            "aggregates": ([("keyspace_name", text)], [("aggregate_name", text)], []),
            "triggers": ([("keyspace_name", text)], [("table_name", text), ("trigger_name", text)], []),
            "indexes": ([("keyspace_name", text)], [("table_name", text), ("index_name", text)], []),
            "views": ([("keyspace_name", text)], [("view_name", text)], []),
        }
        for name, (partition_key, clustering, regular) in definitions.items():
            self.add_table(_SCHEMA_KEYSPACE, name, partition_key, clustering, regular, frozenset(), {})

    def add_table(self, keyspace, name, partition_key, clustering, regular, descending, options) -> TableSchema:
        columns = {}
        for kind, definitions in (("partition_key", partition_key), ("clustering", clustering), ("regular", regular)):
            for position, (column, type_name) in enumerate(definitions):
                try:
                    column_type = parse_type(type_name)
                except InvalidType as exc:
                    raise InvalidRequest(str(exc)) from None
                if column in columns:
                    raise InvalidRequest(f"Multiple definition of identifier {column}")
                columns[column] = Column(column, column_type, kind, position if kind != "regular" else -1)
        schema = TableSchema(keyspace, name, columns, descending, options)
        self.keyspaces[keyspace].tables[name] = schema
        self.data[(keyspace, name)] = {}
        return schema

    def create_keyspace(self, statement: CreateKeyspace) -> SchemaChange | None:
        if statement.name in self.keyspaces:
            if statement.if_not_exists:
                return None
            raise AlreadyExists(statement.name)
        replication = {str(k): str(v) for k, v in statement.replication.items()}
        if "class" not in replication:
            raise InvalidRequest("Missing replication strategy class")
        self.keyspaces[statement.name] = Keyspace(statement.name, replication, bool(statement.durable_writes))
        self.write_row("keyspaces", (statement.name,), (), {
            "durable_writes": bool(statement.durable_writes), "replication": replication})
        self.schema_version = uuid.uuid4()
        return SchemaChange("CREATED", "KEYSPACE", statement.name)

    def create_table(self, statement: CreateTable, current_keyspace: str | None) -> SchemaChange | None:
        keyspace = self.keyspace(statement.table.keyspace or current_keyspace)
        if statement.table.name in keyspace.tables:
            if statement.if_not_exists:
                return None
            raise AlreadyExists(keyspace.name, statement.table.name)
        types = dict(statement.columns)
        key_columns = statement.partition_key + statement.clustering
        missing = [c for c in key_columns if c not in types]
        if missing:
            raise InvalidRequest(f"Unknown definition {missing[0]} referenced in PRIMARY KEY")
        if not set(statement.descending) <= set(statement.clustering):
            raise InvalidRequest("Only clustering key columns can be defined in CLUSTERING ORDER directive")
        schema = self.add_table(
            keyspace.name, statement.table.name,
            [(c, types[c]) for c in statement.partition_key], [(c, types[c]) for c in statement.clustering],
            [(c, t) for c, t in statement.columns if c not in key_columns],
            frozenset(statement.descending), dict(statement.options))
        self.write_row("tables", (keyspace.name,), (schema.name,), {
            "flags": _TABLE_FLAGS, "id": uuid.uuid4(), **{k: v for k, v in statement.options.items()
                                                          if k in ("comment", "default_time_to_live",
                                                                   "gc_grace_seconds")}})
        for column in schema.columns.values():
            order = "none" if column.kind != "clustering" else (
                "desc" if column.name in schema.descending else "asc")
            self.write_row("columns", (keyspace.name,), (schema.name, column.name), {
                "clustering_order": order, "column_name_bytes": column.name.encode(), "kind": column.kind,
                "position": column.position, "type": str(column.type)})
        self.schema_version = uuid.uuid4()
        return SchemaChange("CREATED", "TABLE", keyspace.name, schema.name)

    def alter_table_add(self, statement, current_keyspace: str | None) -> SchemaChange:
        schema = self.table(statement.table, current_keyspace)
        for name, type_name in statement.columns:
            if name in schema.columns:
                raise InvalidRequest(f"Invalid column name {name} because it conflicts with an existing column")
            try:
                column_type = parse_type(type_name)
            except InvalidType as exc:
                raise InvalidRequest(str(exc)) from None
            schema.columns[name] = Column(name, column_type, "regular", -1)
            self.write_row("columns", (schema.keyspace,), (schema.name, name), {
                "clustering_order": "none", "column_name_bytes": name.encode(), "kind": "regular",
                "position": -1, "type": str(column_type)})
        self.schema_version = uuid.uuid4()
        return SchemaChange("UPDATED", "TABLE", schema.keyspace, schema.name)

    def write_row(self, table: str, key: tuple, clustering: tuple, values: dict, keyspace=_SCHEMA_KEYSPACE) -> None:
        """Insert a row directly, as the node's own bookkeeping does (schema tables, system.local)."""
        timestamp = int(self.now() * 1e6)
        partitions = self.data[(keyspace, table)]
        partition = partitions.get(key) or partitions.setdefault(key, Partition(self.keyspaces[keyspace].tables[table]))
        partition.write(clustering, None, Cell(True, timestamp))
        for column, value in values.items():
            partition.write(clustering, column, Cell(value, timestamp))

    def keyspace(self, name: str | None) -> Keyspace:
        if name is None:
            raise InvalidRequest(
                "No keyspace has been specified. USE a keyspace, or explicitly specify keyspace.tablename")
        try:
            return self.keyspaces[name]
        except KeyError:
            raise InvalidRequest(f"Keyspace '{name}' does not exist") from None

    def table(self, ref: TableRef, current_keyspace: str | None) -> TableSchema:
        keyspace = self.keyspace(ref.keyspace or current_keyspace)
        try:
            return keyspace.tables[ref.name]
        except KeyError:
            raise InvalidRequest(f"unconfigured table {ref.name}") from None

    def truncate(self, statement: Truncate, current_keyspace: str | None) -> None:
        schema = self.table(statement.table, current_keyspace)
        self.data[(schema.keyspace, schema.name)] = {}

    # -- preparing ----------------------------------------------------------------------------------------

    def prepare(self, statement, current_keyspace: str | None) -> Prepared:
        """Check a DML statement against the schema and describe its bind markers."""
        schema = self.table(statement.table, current_keyspace)
        markers: list = [None] * statement.marker_count

        def bind(term, name: str, column_type: CqlType) -> None:
            if isinstance(term, Marker):
                markers[term.index] = (schema.keyspace, schema.name, name, column_type)
            elif term.value is not None:
                try:
                    column_type.from_literal(term.value)
                except InvalidType as exc:
                    raise InvalidRequest(str(exc)) from None

        if isinstance(statement, Insert):
            for column, term in zip(statement.columns, statement.values):
                bind(term, column, schema.column(column).type)
            missing = [c.name for c in schema.partition_key + schema.clustering if c.name not in statement.columns]
            if missing:
                raise InvalidRequest(f"Some primary key parts are missing: {', '.join(missing)}")
        elif isinstance(statement, Update):
            for column, term in statement.assignments:
                if schema.column(column).kind != "regular":
                    raise InvalidRequest(f"PRIMARY KEY part {column} found in SET part")
                bind(term, column, schema.column(column).type)
        elif isinstance(statement, Delete):
            for column in statement.columns:
                if schema.column(column).kind != "regular":
                    raise InvalidRequest(f"Invalid identifier {column} for deletion (should not be a PRIMARY KEY part)")
        for relation in getattr(statement, "where", []):
            bind(relation.term, relation.column, schema.column(relation.column).type)
        for option in ("ttl", "timestamp", "limit"):
            term = getattr(statement, option, None)
            if term is not None:
                bind(term, f"[{option}]", CqlType("bigint" if option == "timestamp" else "int"))
        if None in markers:
            raise InvalidRequest("a bind marker is used where this node cannot type it")
        self._check_restrictions(schema, statement)
        key_positions = {}
        for relation in getattr(statement, "where", []):
            if isinstance(relation.term, Marker) and schema.columns[relation.column].kind == "partition_key":
                key_positions[relation.column] = relation.term.index
        if isinstance(statement, Insert):
            key_positions = {c: t.index for c, t in zip(statement.columns, statement.values)
                             if isinstance(t, Marker) and schema.columns[c].kind == "partition_key"}
        partition_key_markers = [key_positions[c.name] for c in schema.partition_key if c.name in key_positions]
        if len(partition_key_markers) != len(schema.partition_key):
            partition_key_markers = []
        result_columns = []
        if isinstance(statement, Select):
            names = statement.columns or list(schema.columns)
            result_columns = [(schema.keyspace, schema.name, n, schema.column(n).type) for n in names]
        return Prepared(statement, current_keyspace, markers, partition_key_markers, result_columns)

    def _check_restrictions(self, schema: TableSchema, statement) -> None:
        """Cassandra's rules for WHERE, restricted to what this node implements."""
        where = getattr(statement, "where", None)
        if where is None:
            return
        by_column: dict[str, list[Relation]] = {}
        for relation in where:
            by_column.setdefault(relation.column, []).append(relation)
        key_names = [c.name for c in schema.partition_key]
        restricted_key = [n for n in key_names if n in by_column]
        if isinstance(statement, Select) and not where:
            if statement.order_column is not None:
                raise InvalidRequest(
                    "ORDER BY is only supported when the partition key is restricted by an EQ or an IN.")
            return
        if restricted_key != key_names or any(r.operator != "=" or len(by_column[n]) > 1
                                              for n in key_names for r in by_column[n]):
            raise InvalidRequest("Partition key parts must be restricted by equality on every column "
                                 "(this node does not implement ALLOW FILTERING or IN)")
        ranged = False
        for position, column in enumerate(schema.clustering):
            relations = by_column.get(column.name, [])
            if not relations:
                rest = [c.name for c in schema.clustering[position + 1:] if c.name in by_column]
                if rest:
                    raise InvalidRequest(f"PRIMARY KEY column {rest[0]} cannot be restricted as preceding column "
                                         f"{column.name} is not restricted")
                break
            if ranged:
                raise InvalidRequest(f"Clustering column {column.name} cannot be restricted after a range")
            if any(r.operator != "=" for r in relations):
                if isinstance(statement, (Update, Delete)):
                    raise InvalidRequest("Range deletions and updates are not implemented by this node")
                if len(relations) > 2 or len({r.operator[0] for r in relations}) != len(relations):
                    raise InvalidRequest(f"More than one restriction was found for the bound of {column.name}")
                ranged = True
            elif len(relations) > 1:
                raise InvalidRequest(
                    f"{column.name} cannot be restricted by more than one relation if it includes an Equal")
        others = [n for n in by_column if schema.columns[n].kind == "regular"]
        if others:
            raise InvalidRequest(f"Cannot restrict column {others[0]}: this node does not implement ALLOW FILTERING")
        restricted_clustering = [c for c in schema.clustering if c.name in by_column]
        if isinstance(statement, Update) and len(restricted_clustering) != len(schema.clustering):
            raise InvalidRequest("Missing mandatory PRIMARY KEY part in UPDATE")
        if isinstance(statement, Select) and statement.order_column is not None:
            if not schema.clustering or statement.order_column != schema.clustering[0].name:
                raise InvalidRequest("Order by is currently only supported on the clustered columns of the PRIMARY KEY")

    # -- executing ----------------------------------------------------------------------------------------

    def partition_key_of(self, prepared: Prepared, values: list) -> tuple[TableSchema, tuple] | None:
        """The (table, partition key) a bound statement touches, or None for a multi-partition scan."""
        statement = prepared.statement
        schema = self.table(statement.table, prepared.keyspace)
        if isinstance(statement, Insert):
            given = dict(zip(statement.columns, statement.values))
        else:
            given = {r.column: r.term for r in statement.where if r.operator == "="}
        if not all(c.name in given for c in schema.partition_key):
            return None
        return schema, _key(schema.partition_key, [self._value(given[c.name], c.type, values)
                                                   for c in schema.partition_key])

    def execute(self, prepared: Prepared, values: list, *, timestamp: int | None, page_size: int | None = None,
                paging_state: bytes | None = None):
        statement = prepared.statement
        schema = self.table(statement.table, prepared.keyspace)
        if timestamp is None:
            timestamp = int(self.now() * 1e6)
        if isinstance(statement, Select):
            return self._select(schema, prepared, values, page_size, paging_state)
        if statement.timestamp is not None:
            timestamp = self._value(statement.timestamp, CqlType("bigint"), values)
        _, key = self.partition_key_of(prepared, values)
        partitions = self.data[(schema.keyspace, schema.name)]
        partition = partitions.get(key) or partitions.setdefault(key, Partition(schema))
        if isinstance(statement, Insert):
            given = dict(zip(statement.columns, statement.values))
            clustering = _key(schema.clustering, [self._value(given[c.name], c.type, values)
                                                  for c in schema.clustering])
        else:
            clustering = self._clustering_prefix(schema, statement.where, values)
        conditional = getattr(statement, "if_not_exists", False) or getattr(statement, "if_exists", False)
        if conditional:
            existing = partition.rows.get(clustering)
            exists = existing is not None and existing.is_live(self.now())
            if exists == bool(getattr(statement, "if_not_exists", False)):
                return self._not_applied(schema, key, clustering, existing if exists else None)
            # Lightweight transactions take their timestamp from the coordinator's Paxos ballot.
            timestamp = max(timestamp, int(self.now() * 1e6))
        ttl = self._ttl(schema, statement, values)
        expires_at = self.now() + ttl if ttl else None
        if isinstance(statement, Insert):
            partition.write(clustering, None, Cell(True, timestamp, expires_at))
            assignments = [(c, t) for c, t in zip(statement.columns, statement.values)
                           if schema.columns[c].kind == "regular"]
        elif isinstance(statement, Update):
            assignments = statement.assignments
        else:
            if statement.columns:
                for column in statement.columns:
                    partition.write(clustering, column, Cell(None, timestamp))
            else:
                partition.delete(clustering, timestamp)
            assignments = []
        for column, term in assignments:
            value = self._value(term, schema.columns[column].type, values)
            if value is UNSET:
                continue
            partition.write(clustering, column, Cell(value, timestamp, expires_at if value is not None else None))
        if conditional:
            return Rows([(schema.keyspace, schema.name, "[applied]", APPLIED)], [[True]])
        return None

    def _not_applied(self, schema, key, clustering, row: Row | None) -> Rows:
        columns = [(schema.keyspace, schema.name, "[applied]", APPLIED)]
        values = [False]
        if row is not None:
            columns += [(schema.keyspace, schema.name, c.name, c.type) for c in schema.columns.values()]
            values += self._row_values(schema, key, clustering, row, list(schema.columns))
        return Rows(columns, [values])

    def _ttl(self, schema: TableSchema, statement, values) -> int:
        term = getattr(statement, "ttl", None)
        if term is None:
            return int(schema.options.get("default_time_to_live", 0))
        ttl = self._value(term, CqlType("int"), values)
        if ttl is None or ttl is UNSET or ttl < 0:
            raise InvalidRequest(f"A TTL must be greater or equal to 0, but was {ttl}")
        return ttl

    def _value(self, term, column_type: CqlType, values: list):
        if isinstance(term, Marker):
            return values[term.index]
        return None if term.value is None else column_type.from_literal(term.value)

    def _clustering_prefix(self, schema: TableSchema, where: list[Relation], values) -> tuple:
        given = {r.column: r.term for r in where if r.operator == "="}
        columns = []
        for column in schema.clustering:
            if column.name not in given:
                break
            columns.append(column)
        return _key(columns, [self._value(given[c.name], c.type, values) for c in columns])

    def _row_values(self, schema: TableSchema, key: tuple, clustering: tuple, row: Row, names: list[str]) -> list:
        now = self.now()
        result = []
        for name in names:
            column = schema.columns[name]
            if column.kind == "partition_key":
                result.append(key[column.position])
            elif column.kind == "clustering":
                result.append(clustering[column.position])
            else:
                cell = row.cells.get(name)
                result.append(cell.value if cell is not None and cell.is_live(now) else None)
        return result

    def _select(self, schema: TableSchema, prepared: Prepared, values, page_size, paging_state) -> Rows:
        statement: Select = prepared.statement
        reverse = statement.order_descending is not None and (
            statement.order_descending != (schema.clustering[0].name in schema.descending))
        partitions = self.data[(schema.keyspace, schema.name)]
        found = self.partition_key_of(prepared, values)
        if found is not None:
            keys = [found[1]] if found[1] in partitions else []
        else:
            keys = sorted(partitions, key=lambda k: self._scan_position(schema, k))
        restricted = [schema.columns[r.column] for r in statement.where
                      if schema.columns[r.column].kind == "clustering"]
        values_of = _key(restricted, [self._value(r.term, schema.columns[r.column].type, values)
                                      for r in statement.where if schema.columns[r.column].kind == "clustering"])
        bounds = [(column.position, r.operator, value) for column, r, value in zip(
            restricted, [r for r in statement.where if schema.columns[r.column].kind == "clustering"], values_of)]
        limit = None
        if statement.limit is not None:
            limit = self._value(statement.limit, CqlType("int"), values)
            if limit is None or limit is UNSET or limit <= 0:
                raise InvalidRequest("LIMIT must be strictly positive")
        resume = json.loads(paging_state) if paging_state else None
        returned = resume["returned"] if resume else 0
        wanted = None if limit is None else limit - returned
        if page_size is not None and page_size > 0:
            wanted = page_size if wanted is None else min(wanted, page_size)
        names = statement.columns or list(schema.columns)
        now = self.now()
        rows, last = [], None
        resume_key = tuple(resume["key"]) if resume else None
        prefix, first, last_bound = _clustering_slice(schema, bounds)
        exact = len(prefix) == len(schema.clustering) > 0
        for key in keys:
            if resume_key is not None and self._scan_position(schema, key) < self._scan_position(schema, resume_key):
                continue
            partition = partitions[key]
            if exact:
                candidates = [prefix]
            else:
                start, end = partition.span(prefix, first, last_bound)
                if resume_key == key:
                    position = schema.clustering_order_key(tuple(resume["clustering"]))
                    if reverse:
                        end = min(end, bisect.bisect_left(partition.order_keys, position))
                    else:
                        start = max(start, bisect.bisect_right(partition.order_keys, position))
                indices = range(end - 1, start - 1, -1) if reverse else range(start, end)
                # Lazily: a page usually needs a few rows of a long slice (nothing writes while this runs).
                candidates = (partition.keys[index] for index in indices)
            for clustering in candidates:
                row = partition.rows.get(clustering)
                if row is None or not row.is_live(now) or not _within(clustering, bounds):
                    continue
                if wanted is not None and len(rows) == wanted:
                    more = limit is None or returned + len(rows) < limit
                    state = json.dumps({"key": list(last[0]), "clustering": list(last[1]),
                                        "returned": returned + len(rows)}).encode() if more else None
                    return Rows(prepared.result_columns, rows, state)
                rows.append(self._row_values(schema, key, clustering, row, names))
                last = (key, clustering)
        return Rows(prepared.result_columns, rows)

    @staticmethod
    def _scan_position(schema: TableSchema, key: tuple) -> tuple:
        """Where a partition comes in a scan of the whole table: token order, as in Cassandra."""
        return token_of(partition_key_bytes(schema, key)), key


def _key(columns: list[Column], values: list) -> tuple:
    """Key values as a tuple; a key part cannot be null or unset."""
    for column, value in zip(columns, values):
        if value is None or value is UNSET:
            raise InvalidRequest(f"Invalid {'null' if value is None else 'unset'} value for column {column.name}")
    return tuple(values)


def _clustering_slice(schema: TableSchema, bounds: list) -> tuple[tuple, object, object]:
    """From validated restrictions (equalities on a prefix, then a range on the next column): the prefix, and
    the range's inclusive ends in the table's order (the high bound first for a descending column)."""
    prefix = tuple(value for _, operator, value in sorted(bounds, key=lambda b: b[0]) if operator == "=")
    low = next((value for _, operator, value in bounds if operator in (">", ">=")), None)
    high = next((value for _, operator, value in bounds if operator in ("<", "<=")), None)
    if len(prefix) < len(schema.clustering) and schema.clustering[len(prefix)].name in schema.descending:
        return prefix, high, low
    return prefix, low, high


def _within(clustering: tuple, bounds: list) -> bool:
    for position, operator, bound in bounds:
        value = clustering[position]
        if not {"=": value == bound, "<": value < bound, "<=": value <= bound,
                ">": value > bound, ">=": value >= bound}[operator]:
            return False
    return True
