"""Declarative base and the column types every model shares."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import BigInteger, DateTime, MetaData
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.types import TypeDecorator

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


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
