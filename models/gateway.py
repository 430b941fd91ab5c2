"""Tables of the Discord gateway (app.gateway): resumable sessions and the record of identifies.

Core tables, like the event stream's: only app.gateway.store touches them.
"""
from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, LargeBinary, String, Table

from models.base import Base, Snowflake, UTCDateTime

_ROW_ID = BigInteger().with_variant(Integer(), "sqlite")

#: A gateway session as a worker last saved it, so that a RESUME can land on any worker. ``state`` is JSON
#: (app.gateway.store.SavedSession): intents, shard, guilds, and the stream positions that map the session's
#: sequence numbers back to events. ``open`` is true while a worker serves the session; ``saved_at`` says how fresh
#: that claim is (a worker that died leaves an open row that stops being renewed).
gateway_sessions = Table(
    "gateway_sessions", Base.metadata,
    Column("session_id", String(64), primary_key=True),
    Column("user_id", Snowflake, nullable=False),
    Column("state", LargeBinary, nullable=False),
    Column("open", Boolean, nullable=False),
    #: A token of the connection that serves (or last served) the session: a save by a connection that lost the
    #: session to a RESUME elsewhere changes nothing.
    Column("owner", String(64), nullable=False),
    Column("saved_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
)

#: One row per accepted IDENTIFY, for ``session_start_limit`` (per user per 24 hours, shared by all workers) and
#: ``max_concurrency`` (per 5 seconds).
gateway_identifies = Table(
    "gateway_identifies", Base.metadata,
    Column("id", _ROW_ID, primary_key=True, autoincrement=True),
    Column("user_id", Snowflake, nullable=False),
    Column("identified_at", UTCDateTime, nullable=False),
    Index("ix_gateway_identifies_user_time", "user_id", "identified_at"),
)
