"""Tables of the durable event stream (app.events): the outbox every writer appends to, and the SQL bus.

Core tables rather than mapped classes: only app.events.outbox, app.events.relay and app.events.sql touch them,
through SQLAlchemy Core. They live here, on the models' metadata, so that Alembic and the schema tests see them.
"""
from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, String, Table

from models.base import Base, Snowflake, UTCDateTime

#: SQLite assigns autoincrement ids only to an INTEGER PRIMARY KEY column.
_ROW_ID = BigInteger().with_variant(Integer(), "sqlite")

#: Events of committed writes not yet on the bus. ``id`` order is commit order within a channel, because a
#: writer holds its channel's row lock when it appends. ``payload`` is ``app.events.base.event_to_bytes``.
#: ``unconfirmed``, when set, is the check (JSON) that the store must pass before the event is published: the
#: event of a write whose outcome is unknown (app.events.outbox).
event_outbox = Table(
    "event_outbox", Base.metadata,
    Column("id", _ROW_ID, primary_key=True, autoincrement=True),
    Column("payload", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("unconfirmed", LargeBinary, nullable=True),
)

#: Who runs the relay, for databases without advisory locks (SQLite): one row, taken over when it expires.
event_relay_lease = Table(
    "event_relay_lease", Base.metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("holder", String(64), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

#: The SQL bus's log: a dense position per partition, assigned by the single relay.
event_stream = Table(
    "event_stream", Base.metadata,
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", Snowflake, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("published_at", UTCDateTime, nullable=False),
    Index("ix_event_stream_published_at", "published_at"),
)

#: Per partition: the last position assigned, and the last one trimmed (reads after an earlier one expired).
event_partitions = Table(
    "event_partitions", Base.metadata,
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("last_position", BigInteger, nullable=False),
    Column("trimmed_through", BigInteger, nullable=False),
)

#: Per consumer group and partition: the last position delivered to the group.
event_group_offsets = Table(
    "event_group_offsets", Base.metadata,
    Column("group_name", String(200), primary_key=True),
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("delivered_through", BigInteger, nullable=False),
)

#: Events delivered to a group's consumer and not yet acknowledged.
event_group_pending = Table(
    "event_group_pending", Base.metadata,
    Column("group_name", String(200), primary_key=True),
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("consumer", String(200), nullable=False),
    Column("delivered_at", UTCDateTime, nullable=False),
    Column("deliveries", Integer, nullable=False),
    Index("ix_event_group_pending_group_name_delivered_at", "group_name", "delivered_at"),
)
