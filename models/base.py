"""Declarative base and the column types every model shares."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from datetime import datetime, timezone

import psycopg2.extensions
from sqlalchemy import BigInteger, DateTime, MetaData
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Compiled, Connection, Dialect, Engine
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.expression import Executable
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)

# Stable constraint names keep Alembic autogenerate quiet and let downgrades drop constraints by name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where UTC is required")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


Snowflake = BigInteger

#: Execution option of a transaction that only reads. On SQLite it begins DEFERRED, so it takes no lock and runs
#: beside another process's write (WAL); every other transaction begins IMMEDIATE (app.sqlite). A write in
#: a transaction so marked could fail on the lock upgrade, so only mark what never writes.
READ_ONLY_OPTION = "chatstore_read_only"
READ_ONLY = {READ_ONLY_OPTION: True}


def begin_read_only(session: Session) -> None:
    """Begin the session's transaction as read-only (see :data:`READ_ONLY`), unless one is open already."""
    if not session.in_transaction():
        session.connection(execution_options=READ_ONLY)


#: What runs when a :func:`shared_transaction` ends, given the exception that ended it or None (committed).
TransactionEnd = Callable[[BaseException | None], None]

#: The transaction of :func:`shared_transaction` open in this greenlet (contextvars are per greenlet), if any, with
#: what runs when it ends (:func:`when_transaction_ends`).
_SHARED: ContextVar[tuple[Engine, Connection, list[TransactionEnd]] | None] = ContextVar(
    "chatstore_shared_transaction", default=None)

#: libpq's transaction status of a connection outside any transaction block (psycopg2's TRANSACTION_STATUS_IDLE).
_PG_IDLE = 0
#: libpq's status when it cannot tell (the connection is bad): nothing can be rolled back on it.
_PG_UNKNOWN = 4


@contextmanager
def shared_transaction(engine: Engine) -> Iterator[Connection]:
    """Begin a write transaction on ``engine`` that code running inside it, in this greenlet, joins instead of
    beginning its own (see :func:`joined_connection`): so a message written by the SQL store, the channel's
    bookkeeping and the events of the write commit together, or not at all.

    On PostgreSQL the transaction is begun and ended by statements on a connection the driver leaves in
    autocommit, so that its last statements may carry its ``COMMIT`` in the same round trip (see
    :func:`commits_by_statement`); it commits on leaving the block unless they did. Its ``BEGIN``, and the
    writes given to :func:`execute_later`, go with the next statement sent: a transaction of writes whose
    results nobody reads goes to the server as one query."""
    opened = _statement_transaction(engine) if engine.dialect.name == "postgresql" else engine.begin()
    ended: list[TransactionEnd] = []
    try:
        with opened as connection:
            token = _SHARED.set((engine, connection, ended))
            try:
                yield connection
            finally:
                _SHARED.reset(token)
    except BaseException as error:
        _run_ended(ended, error)
        raise
    _run_ended(ended, None)


def _run_ended(ended: list[TransactionEnd], error: BaseException | None) -> None:
    for callback in ended:
        try:
            callback(error)
        except Exception:
            # The transaction's outcome stands: its caller must see it, not a bystander's failure.
            log.exception("a callback of a shared transaction's end failed")


def when_transaction_ends(callback: TransactionEnd) -> None:
    """Run ``callback`` when the :func:`shared_transaction` open in this greenlet ends, after its commit or
    rollback: with None if it committed, else with the exception that ended it (as raised inside the block or by
    the commit, before its caller translates it). An exception of ``callback`` is logged, never raised."""
    shared = _SHARED.get()
    if shared is None:
        raise RuntimeError("no shared transaction is open in this greenlet")
    shared[2].append(callback)


def holds_writes() -> bool:
    """Whether the :func:`shared_transaction` open in this greenlet holds writes of :func:`execute_later` not
    sent yet: whether they succeed is known only when the transaction's next statement, or its end, sends them."""
    shared = _SHARED.get()
    if shared is None or shared[1].invalidated:
        return False
    unsent = _UNSENT.get(shared[1].connection.driver_connection)
    return bool(unsent) and unsent != [b"BEGIN"]


#: The SQL of each open :func:`_statement_transaction` not sent yet, by its psycopg2 connection: the BEGIN (until
#: something is sent) and the writes given to :func:`execute_later`, each as psycopg2 would send it.
_UNSENT: dict[object, list[bytes]] = {}


class _UnsentFirstCursor(psycopg2.extensions.cursor):
    """The cursor class of a connection in a :func:`_statement_transaction`: whatever it sends first sends the
    transaction's unsent SQL, in the same query where it can (one round trip). Every cursor of the connection is
    one (SQLAlchemy's, or a caller's that names no other class), so no statement of the transaction can run before
    the writes preceding it. psycopg2 answers a string of statements with the last one's result, and the server
    stops at the first that fails (the transaction is then aborted, and rolled back on leaving)."""

    def execute(self, query, vars=None):
        unsent = _UNSENT.get(self.connection)
        if not unsent:
            return super().execute(query, vars)
        unsent.append(self.mogrify(query, vars))
        sql = b"; ".join(unsent)
        unsent.clear()
        return super().execute(sql)

    def executemany(self, query, vars_list):
        unsent = _UNSENT.get(self.connection)
        if unsent:
            sql = b"; ".join(unsent)
            unsent.clear()
            super().execute(sql)
        return super().executemany(query, vars_list)


@contextmanager
def _statement_transaction(engine: Engine) -> Iterator[Connection]:
    """A PostgreSQL transaction begun by ``BEGIN`` on a connection whose driver is in autocommit (psycopg2 then
    sends no BEGIN or COMMIT of its own), committed by ``COMMIT`` on leaving unless a statement of the caller ended
    it, rolled back on an error. libpq's transaction status, which every answer updates, says which. The driver's
    flag is set directly: through SQLAlchemy's isolation level it cost more CPU than the round trip it saves.

    The ``BEGIN`` waits, with the writes of :func:`execute_later`, for the transaction's next statement (see
    :class:`_UnsentFirstCursor`); a transaction that sends nothing sends no ``BEGIN`` either."""
    with engine.connect() as connection:
        driver = connection.connection.driver_connection
        driver.autocommit = True
        cursor_factory, driver.cursor_factory = driver.cursor_factory, _UnsentFirstCursor
        unsent = _UNSENT[driver] = [b"BEGIN"]
        try:
            yield connection
            if unsent == [b"BEGIN"]:
                unsent.clear()
            elif unsent or _pg_status(connection) != _PG_IDLE:
                connection.exec_driver_sql("COMMIT")
        except BaseException:
            unsent.clear()  # never sent: nothing of it to roll back
            if (not connection.invalidated and not driver.closed
                    and _pg_status(connection) not in (_PG_IDLE, _PG_UNKNOWN)):
                try:
                    connection.exec_driver_sql("ROLLBACK")
                except sa_exc.DBAPIError:
                    pass  # the connection is lost (and invalidated): the server rolls back on its own
            raise
        finally:
            del _UNSENT[driver]
            if not connection.invalidated and not driver.closed:
                driver.autocommit = False
                driver.cursor_factory = cursor_factory


def execute_later(connection: Connection, statement: Executable, parameters: dict) -> None:
    """Run ``statement``, a write whose result nobody reads, with ``parameters`` in the transaction open on
    ``connection``.

    In a :func:`shared_transaction` on PostgreSQL it is not sent now: rendered here as psycopg2 would send it
    (compiled by SQLAlchemy, its parameters through their types' bind processors), it goes with the
    transaction's next statement, in that statement's round trip; its COMMIT at the latest. That next statement
    sees what it wrote, and its failure is that statement's (raised as SQLAlchemy raises the statement's own),
    which rolls back the transaction. Elsewhere the statement is executed now. ``statement`` must be built once and
    live as long as the process (a module constant, or one built once per dialect and kept): its compiled form is
    kept, by the statement, for the life of the process. It may not have expanding (IN) parameters."""
    driver = connection.connection.driver_connection
    unsent = _UNSENT.get(driver)
    if unsent is None:
        connection.execute(statement, parameters)
        return
    compiled, processors = _rendering(statement, connection.dialect)
    values = compiled.construct_params(parameters)
    for name, process in processors:
        values[name] = process(values[name])
    cursor = driver.cursor()
    try:
        unsent.append(cursor.mogrify(compiled.string, values))
    finally:
        cursor.close()


#: The compiled form of each statement given to :func:`execute_later`, with its parameters' bind processors (for
#: psycopg2's PostgreSQL dialect: only its statement transactions hold writes back). Never emptied: it is bounded
#: because those statements are built once per process. (Weak keys would not drop them: a Compiled refers to its
#: statement.)
_RENDERINGS: dict[Executable, tuple[Compiled, list[tuple[str, Callable]]]] = {}


def _rendering(statement: Executable, dialect: Dialect) -> tuple[Compiled, list[tuple[str, Callable]]]:
    rendering = _RENDERINGS.get(statement)
    if rendering is None:
        compiled = statement.compile(dialect=dialect)
        if compiled.post_compile_params:
            raise ValueError("execute_later cannot render expanding parameters")
        escaped = compiled.escaped_bind_names
        processors = []
        for bind, name in compiled.bind_names.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors.append((escaped.get(name, name), process))
        rendering = _RENDERINGS[statement] = (compiled, processors)
    return rendering


def _pg_status(connection: Connection) -> int:
    return connection.connection.driver_connection.info.transaction_status


def commits_by_statement(connection: Connection) -> bool:
    """Whether the :func:`shared_transaction` on ``connection`` may be committed by a ``COMMIT`` sent with its
    last statements (PostgreSQL; psycopg2 sends a string of several statements as one query, in one round trip).
    A row lock taken by those statements is then held only while the server runs them: not while the worker,
    busy with other requests' Python, gets round to sending the COMMIT."""
    return connection.dialect.name == "postgresql" and connection.connection.driver_connection.autocommit


def joined_connection(engine: Engine) -> Connection | None:
    """The connection of the :func:`shared_transaction` on ``engine`` open in this greenlet, else None."""
    shared = _SHARED.get()
    return shared[1] if shared is not None and shared[0] is engine else None


def in_shared_transaction() -> bool:
    """Whether this greenlet runs inside a :func:`shared_transaction`: what it reads there may not be committed
    yet, so it must not be shared with other greenlets."""
    return _SHARED.get() is not None


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


#: SQLAlchemy's errors that mean the database could not answer (down, unreachable, the connection lost, the pool
#: exhausted), as opposed to a bug in a statement: stores and buses report them as being unavailable.
DATABASE_UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError,
                        sa_exc.DisconnectionError)


def means_unavailable(error: BaseException) -> bool:
    """Whether ``error``, raised by SQLAlchemy, says the database could not answer: one of
    :data:`DATABASE_UNAVAILABLE`, or any database error that lost its connection (the SQL store and the channel's
    writes report both as the store being unavailable)."""
    return isinstance(error, DATABASE_UNAVAILABLE) or (isinstance(error, sa_exc.DBAPIError)
                                                      and error.connection_invalidated)


@contextmanager
def single_statements(engine: Engine) -> Iterator[Connection]:
    """A connection for statements each of which stands alone (a read of one query, statements each consistent
    on its own, an idempotent delete), outside any transaction of the caller's. For reads, ``engine`` should carry
    :data:`READ_ONLY`.

    On PostgreSQL the driver is in autocommit for the block, so each statement is its own transaction, in one round
    trip: psycopg2 otherwise sends ``BEGIN`` before it and the ``COMMIT`` (or the pool's ``ROLLBACK``) after, three
    round trips, each a wait through the hub for the worker (about 30 ms each on a worker busy with requests) and
    work for the server. A read sees exactly what it did: the engine keeps the server's isolation level
    (app.extensions sets none; PostgreSQL's default is READ COMMITTED, where every statement takes its own snapshot
    even inside a transaction), and a lone statement sees one snapshot at any level. The driver's flag is set
    directly: SQLAlchemy's ``isolation_level`` option sends ``SET default_transaction_isolation`` when the
    connection is returned, a round trip again.

    Elsewhere (SQLite) it is a transaction, begun as the engine's options say."""
    if engine.dialect.name != "postgresql":
        with engine.begin() as connection:
            yield connection
        return
    with engine.connect() as connection, _autocommit(connection.connection):
        yield connection


@contextmanager
def _autocommit(pooled: PoolProxiedConnection) -> Iterator[None]:
    """The pooled psycopg2 connection in autocommit for the block, and out of it after: the pool's other users
    begin transactions of their own. A connection lost meanwhile (invalidated, closed) goes back to no pool."""
    driver = pooled.driver_connection
    driver.autocommit = True
    try:
        yield
    finally:
        if pooled.is_valid and not driver.closed:
            driver.autocommit = False


#: Statements of :func:`read_one_row`, each compiled once per dialect.
_COMPILED: dict[tuple[int, str], Compiled] = {}


def read_one_row(engine: Engine, statement, parameters: dict) -> tuple:
    """One row of a single-statement read on a pooled DBAPI connection, without SQLAlchemy's Connection.

    For reads made on every request (the read cache's versions): through a Connection one costs about 100 us of
    Python (begin and commit events, result wrapping), through the bare cursor about 20 us. The statement is its own
    transaction, in one round trip (see :func:`single_statements`): the driver begins none (SQLite's is told
    never to, app.sqlite; psycopg2 is in autocommit for the read), so the pool's rollback when the connection is
    returned has nothing to end and sends nothing. Driver errors are raised as SQLAlchemy's, as from any other
    query, so that callers see one kind of database error. ``statement`` must be a module-level constant: it is
    compiled once and kept by its identity.
    """
    key = (id(statement), engine.dialect.name)
    compiled = _COMPILED.get(key)
    if compiled is None:
        compiled = _COMPILED[key] = statement.compile(dialect=engine.dialect)
    sql = compiled.string
    values = compiled.construct_params(parameters)
    bound = [values[name] for name in compiled.positiontup] if compiled.positional else values
    dialect = engine.dialect
    dbapi = dialect.loaded_dbapi
    try:
        connection = engine.raw_connection()
    except dbapi.Error as error:
        raise sa_exc.DBAPIError.instance(sql, None, error, dbapi.Error, hide_parameters=True,
                                         connection_invalidated=True) from error
    try:
        with _autocommit(connection) if dialect.name == "postgresql" else nullcontext():
            cursor = connection.cursor()
            try:
                cursor.execute(sql, bound)
                return cursor.fetchone()
            finally:
                cursor.close()
    except dbapi.Error as error:
        lost = dialect.is_disconnect(error, connection.dbapi_connection, None)
        if lost:
            connection.invalidate(error)
        raise sa_exc.DBAPIError.instance(sql, None, error, dbapi.Error, hide_parameters=True,
                                         connection_invalidated=lost) from error
    finally:
        connection.close()
