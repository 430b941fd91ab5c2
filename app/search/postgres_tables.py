"""Tables of the PostgreSQL search engine (app.search.postgres), on ``models.base.Base.metadata`` so that Alembic
sees one schema (migrations/env.py imports this module). They exist on SQLite too, empty, so that the schema is
the same on both databases; there the SQLite engine keeps its index in a file of its own.
"""
from __future__ import annotations

from sqlalchemy import ARRAY, BigInteger, Boolean, Column, Index, Integer, SmallInteger, Table, Text
from sqlalchemy.dialects.postgresql import TSVECTOR

from models.base import Base, Snowflake, UTCDateTime

search_documents = Table(
    "search_documents", Base.metadata,
    Column("message_id", Snowflake, primary_key=True, autoincrement=False),
    Column("guild_id", Snowflake, nullable=False),
    Column("channel_id", Snowflake, nullable=False),
    Column("author_id", Snowflake, nullable=False),
    Column("author_type", SmallInteger, nullable=False),
    Column("has_bits", Integer, nullable=False),
    Column("pinned", Boolean, nullable=False),
    Column("mention_everyone", Boolean, nullable=False),
    Column("mentions", ARRAY(BigInteger).with_variant(Text, "sqlite"), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("body", TSVECTOR().with_variant(Text, "sqlite"), nullable=False),
    Index("ix_search_documents_guild", "guild_id", "message_id"),
    Index("ix_search_documents_author", "guild_id", "author_id", "message_id"),
    Index("ix_search_documents_channel", "channel_id", "message_id"),
    Index("ix_search_documents_body", "body", postgresql_using="gin"),
    Index("ix_search_documents_mentions", "mentions", postgresql_using="gin"),
)

search_tombstones = Table(
    "search_tombstones", Base.metadata,
    Column("message_id", Snowflake, primary_key=True, autoincrement=False),
    Column("deleted_at", UTCDateTime, nullable=False),
)

search_guilds = Table(
    "search_guilds", Base.metadata,
    Column("guild_id", Snowflake, primary_key=True, autoincrement=False),
    Column("state", Text, nullable=False),
    Column("documents_indexed", BigInteger, nullable=False, server_default="0"),
    Column("channel_cursor", Snowflake, nullable=False, server_default="0"),
    Column("message_cursor", Snowflake, nullable=False, server_default="0"),
    Column("owner", Text),
    Column("started_at", UTCDateTime),
    Column("heartbeat_at", UTCDateTime),
)
