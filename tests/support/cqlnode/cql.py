"""A recursive-descent parser for the subset of CQL the message store and its migrations use.

Anything outside the subset raises :class:`CqlSyntaxError`, which the node answers with a syntax error frame.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field


class CqlSyntaxError(Exception):
    pass


@dataclass(frozen=True)
class Marker:
    """A ``?`` bind marker; ``index`` is its position among the statement's markers."""
    index: int


@dataclass(frozen=True)
class Literal:
    value: object


@dataclass(frozen=True)
class TableRef:
    keyspace: str | None
    name: str


@dataclass(frozen=True)
class Relation:
    column: str
    operator: str  # one of = < <= > >=
    term: Marker | Literal


@dataclass
class Use:
    keyspace: str


@dataclass
class CreateKeyspace:
    name: str
    if_not_exists: bool
    replication: dict
    durable_writes: bool = True


@dataclass
class CreateTable:
    table: TableRef
    if_not_exists: bool
    columns: list[tuple[str, str]]
    partition_key: list[str]
    clustering: list[str]
    descending: set[str] = field(default_factory=set)
    options: dict = field(default_factory=dict)


@dataclass
class AlterTableAdd:
    """``ALTER TABLE t ADD c type`` or ``ADD (c type, ...)``: the only schema change the migrations make."""

    table: TableRef
    columns: list[tuple[str, str]]


@dataclass
class Truncate:
    table: TableRef


@dataclass
class Insert:
    table: TableRef
    columns: list[str]
    values: list
    if_not_exists: bool = False
    ttl: Marker | Literal | None = None
    timestamp: Marker | Literal | None = None


@dataclass
class Update:
    table: TableRef
    assignments: list[tuple[str, Marker | Literal]]
    where: list[Relation]
    if_exists: bool = False
    ttl: Marker | Literal | None = None
    timestamp: Marker | Literal | None = None


@dataclass
class Delete:
    table: TableRef
    columns: list[str]
    where: list[Relation]
    if_exists: bool = False
    timestamp: Marker | Literal | None = None


@dataclass
class Select:
    table: TableRef
    columns: list[str] | None  # None for SELECT *
    where: list[Relation]
    order_descending: bool | None = None  # None: the table's clustering order
    order_column: str | None = None
    limit: Marker | Literal | None = None


#: Table options CREATE TABLE accepts besides CLUSTERING ORDER BY.
TABLE_OPTIONS = frozenset({"comment", "default_time_to_live", "gc_grace_seconds", "compaction", "caching"})

_TOKEN = re.compile(r"""
    \s+|--[^\n]*|//[^\n]*
    |(?P<string>'(?:[^']|'')*')
    |(?P<quoted>"(?:[^"]|"")+")
    |(?P<number>-?\d+(?:\.\d+)?)
    |(?P<name>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<symbol><=|>=|!=|[(),;=<>.*?{}:\[\]])
""", re.VERBOSE)


def _tokenize(text: str) -> list[tuple[str, object]]:
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise CqlSyntaxError(f"unexpected character {text[position]!r} at {position}")
        position = match.end()
        kind = match.lastgroup
        if kind is None:
            continue
        raw = match.group(kind)
        if kind == "string":
            tokens.append(("string", raw[1:-1].replace("''", "'")))
        elif kind == "quoted":
            tokens.append(("name", raw[1:-1].replace('""', '"')))
        elif kind == "number":
            tokens.append(("number", float(raw) if "." in raw else int(raw)))
        elif kind == "name":
            tokens.append(("name", raw.lower()))
        else:
            tokens.append(("symbol", raw))
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.tokens = _tokenize(text)
        self.position = 0
        self.markers = 0

    # -- token helpers --------------------------------------------------------------------------------------

    def peek(self, offset: int = 0):
        index = self.position + offset
        return self.tokens[index] if index < len(self.tokens) else ("end", None)

    def accept(self, *words: str) -> bool:
        """Consume the keywords/symbols ``words`` if they come next."""
        for offset, word in enumerate(words):
            kind, value = self.peek(offset)
            if kind not in ("name", "symbol") or value != word:
                return False
        self.position += len(words)
        return True

    def expect(self, *words: str) -> None:
        if not self.accept(*words):
            raise CqlSyntaxError(f"expected {' '.join(words)!r} near {self.peek()[1]!r}")

    def name(self) -> str:
        kind, value = self.peek()
        if kind != "name":
            raise CqlSyntaxError(f"expected a name near {value!r}")
        self.position += 1
        return value

    def table_ref(self) -> TableRef:
        first = self.name()
        if self.accept("."):
            return TableRef(first, self.name())
        return TableRef(None, first)

    def term(self):
        if self.accept("?"):
            self.markers += 1
            return Marker(self.markers - 1)
        return Literal(self.literal())

    def literal(self):
        kind, value = self.peek()
        if kind in ("string", "number"):
            self.position += 1
            return value
        if self.accept("true"):
            return True
        if self.accept("false"):
            return False
        if self.accept("null"):
            return None
        if self.accept("["):
            items = [] if self.accept("]") else self.comma_list(self.literal, "]")
            return items
        if self.accept("{"):
            if self.accept("}"):
                return {}
            entries = self.comma_list(self.map_entry, "}")
            return dict(entries)
        raise CqlSyntaxError(f"expected a value near {value!r}")

    def map_entry(self):
        key = self.literal()
        self.expect(":")
        return key, self.literal()

    def comma_list(self, item, closing: str) -> list:
        items = [item()]
        while self.accept(","):
            items.append(item())
        self.expect(closing)
        return items

    def finish(self, statement):
        self.accept(";")
        if self.peek()[0] != "end":
            raise CqlSyntaxError(f"unexpected {self.peek()[1]!r} after the statement")
        return statement

    # -- statements -----------------------------------------------------------------------------------------

    def statement(self):
        if self.accept("use"):
            return Use(self.name())
        if self.accept("create", "keyspace"):
            return self.create_keyspace()
        if self.accept("create", "table") or self.accept("create", "columnfamily"):
            return self.create_table()
        if self.accept("alter", "table"):
            return self.alter_table_add()
        if self.accept("truncate"):
            self.accept("table")
            return Truncate(self.table_ref())
        if self.accept("insert", "into"):
            return self.insert()
        if self.accept("update"):
            return self.update()
        if self.accept("delete"):
            return self.delete()
        if self.accept("select"):
            return self.select()
        raise CqlSyntaxError(f"unsupported statement starting with {self.peek()[1]!r}")

    def if_not_exists(self) -> bool:
        return self.accept("if", "not", "exists")

    def create_keyspace(self) -> CreateKeyspace:
        if_not_exists = self.if_not_exists()
        name = self.name()
        self.expect("with", "replication", "=")
        replication = self.literal()
        if not isinstance(replication, dict):
            raise CqlSyntaxError("replication must be a map")
        durable_writes = True
        if self.accept("and", "durable_writes", "="):
            durable_writes = self.literal()
        return CreateKeyspace(name, if_not_exists, replication, durable_writes)

    def alter_table_add(self) -> AlterTableAdd:
        table = self.table_ref()
        self.expect("add")
        if self.accept("("):
            columns = self.comma_list(lambda: (self.name(), self.type_name()), ")")
        else:
            columns = [(self.name(), self.type_name())]
        return AlterTableAdd(table, columns)

    def create_table(self) -> CreateTable:
        if_not_exists = self.if_not_exists()
        table = self.table_ref()
        self.expect("(")
        columns: list[tuple[str, str]] = []
        partition_key: list[str] = []
        clustering: list[str] = []
        while True:
            if self.accept("primary", "key"):
                self.expect("(")
                if self.accept("("):
                    partition_key = self.comma_list(self.name, ")")
                else:
                    partition_key = [self.name()]
                clustering = self.comma_list(self.name, ")") if self.accept(",") else (self.expect(")") or [])
            else:
                column = self.name()
                columns.append((column, self.type_name()))
                if self.accept("primary", "key"):
                    partition_key = [column]
            if self.accept(")"):
                break
            self.expect(",")
        if not partition_key:
            raise CqlSyntaxError("a table needs a PRIMARY KEY")
        statement = CreateTable(table, if_not_exists, columns, partition_key, clustering)
        if self.accept("with"):
            while True:
                if self.accept("clustering", "order", "by"):
                    self.expect("(")
                    for column, descending in self.comma_list(self.ordering, ")"):
                        if descending:
                            statement.descending.add(column)
                else:
                    option = self.name()
                    if option not in TABLE_OPTIONS:
                        raise CqlSyntaxError(f"unknown table property {option!r}")
                    self.expect("=")
                    statement.options[option] = self.literal()
                if not self.accept("and"):
                    break
        return statement

    def ordering(self) -> tuple[str, bool]:
        column = self.name()
        if self.accept("desc"):
            return column, True
        self.accept("asc")
        return column, False

    def type_name(self) -> str:
        """The raw text of a type, e.g. ``frozen<list<bigint>>``; checked later by types.parse_type."""
        parts, depth = [self.name()], 0
        while True:
            if self.accept("<"):
                depth += 1
                parts.append("<")
            elif depth and self.accept(">"):
                depth -= 1
                parts.append(">")
            elif depth and self.accept(","):
                parts.append(",")
            elif depth:
                parts.append(self.name())
            else:
                return "".join(parts)

    def using(self) -> tuple:
        ttl = timestamp = None
        if self.accept("using"):
            while True:
                if self.accept("ttl"):
                    ttl = self.term()
                elif self.accept("timestamp"):
                    timestamp = self.term()
                else:
                    raise CqlSyntaxError("expected TTL or TIMESTAMP after USING")
                if not self.accept("and"):
                    break
        return ttl, timestamp

    def insert(self) -> Insert:
        table = self.table_ref()
        self.expect("(")
        columns = self.comma_list(self.name, ")")
        self.expect("values", "(")
        values = self.comma_list(self.term, ")")
        if len(values) != len(columns):
            raise CqlSyntaxError("INSERT has a different number of columns and values")
        if_not_exists = self.if_not_exists()
        ttl, timestamp = self.using()
        return Insert(table, columns, values, if_not_exists, ttl, timestamp)

    def update(self) -> Update:
        table = self.table_ref()
        ttl, timestamp = self.using()
        self.expect("set")
        assignments = []
        while True:
            column = self.name()
            self.expect("=")
            assignments.append((column, self.term()))
            if not self.accept(","):
                break
        where = self.where()
        if_exists = self.accept("if", "exists")
        return Update(table, assignments, where, if_exists, ttl, timestamp)

    def delete(self) -> Delete:
        columns = [] if self.peek() == ("name", "from") else self.comma_list_until_from()
        self.expect("from")
        table = self.table_ref()
        _, timestamp = self.using()
        where = self.where()
        if_exists = self.accept("if", "exists")
        return Delete(table, columns, where, if_exists, timestamp)

    def comma_list_until_from(self) -> list[str]:
        columns = [self.name()]
        while self.accept(","):
            columns.append(self.name())
        return columns

    def where(self) -> list[Relation]:
        self.expect("where")
        relations = [self.relation()]
        while self.accept("and"):
            relations.append(self.relation())
        return relations

    def relation(self) -> Relation:
        column = self.name()
        kind, operator = self.peek()
        if kind != "symbol" or operator not in ("=", "<", "<=", ">", ">="):
            raise CqlSyntaxError(f"unsupported operator {operator!r}")
        self.position += 1
        return Relation(column, operator, self.term())

    def select(self) -> Select:
        columns = None if self.accept("*") else self.comma_list_until_from()
        self.expect("from")
        table = self.table_ref()
        where = self.where() if self.peek() == ("name", "where") else []
        statement = Select(table, columns, where)
        if self.accept("order", "by"):
            statement.order_column, statement.order_descending = self.ordering()
        if self.accept("limit"):
            statement.limit = self.term()
        return statement


def parse(text: str):
    """Parse one CQL statement; its ``marker_count`` attribute says how many ``?`` markers it has."""
    parser = _Parser(text)
    statement = parser.finish(parser.statement())
    statement.marker_count = parser.markers
    return statement
