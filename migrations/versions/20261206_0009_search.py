"""search index tables of the PostgreSQL engine

Revision ID: 0009
Revises: 0006
Create Date: 2026-12-06

The PostgreSQL search engine (SEARCH_ENGINE=postgres, app/search/postgres.py) keeps its index in the metadata
database: ``search_documents`` (one row per message, the content as a ``tsvector`` under a GIN index, the
mentioned users as an array under a GIN index), ``search_tombstones`` (deleted messages a late event or a reindex
must not bring back) and ``search_guilds`` (each guild's index state and its reindex checkpoint). Its text
search configuration ``chatstore_search`` is ``simple`` with English Snowball stemming and no stop words (the
tokens are made in Python, app/search/text.py). On SQLite nothing is created: the SQLite engine keeps its index in
a file of its own.

Compatibility: new tables and a new text search configuration only, which the previous release neither reads nor
writes, so this revision can be applied while that release runs; creating them takes no lock on existing tables.
The index is empty afterwards: `flask search reindex` (or the first search of each guild) fills it.
"""
from alembic import op

revision = '0009'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("CREATE TEXT SEARCH DICTIONARY chatstore_english_stem (TEMPLATE = snowball, Language = english)")
    op.execute("CREATE TEXT SEARCH CONFIGURATION chatstore_search (COPY = simple)")
    op.execute("ALTER TEXT SEARCH CONFIGURATION chatstore_search ALTER MAPPING FOR asciiword, word, numword, "
               "asciihword, hword, numhword, hword_asciipart, hword_part, hword_numpart "
               "WITH chatstore_english_stem")
    op.execute("""
        CREATE TABLE search_documents (
            message_id bigint PRIMARY KEY, guild_id bigint NOT NULL, channel_id bigint NOT NULL,
            author_id bigint NOT NULL, author_type smallint NOT NULL, has_bits integer NOT NULL,
            pinned boolean NOT NULL, mention_everyone boolean NOT NULL, mentions bigint[] NOT NULL,
            version bigint NOT NULL, body tsvector NOT NULL)""")
    op.execute("CREATE INDEX ix_search_documents_guild ON search_documents (guild_id, message_id)")
    op.execute("CREATE INDEX ix_search_documents_author ON search_documents (guild_id, author_id, message_id)")
    op.execute("CREATE INDEX ix_search_documents_channel ON search_documents (channel_id, message_id)")
    op.execute("CREATE INDEX ix_search_documents_body ON search_documents USING gin (body)")
    op.execute("CREATE INDEX ix_search_documents_mentions ON search_documents USING gin (mentions)")
    op.execute("CREATE TABLE search_tombstones (message_id bigint PRIMARY KEY, deleted_at timestamptz NOT NULL)")
    op.execute("""
        CREATE TABLE search_guilds (
            guild_id bigint PRIMARY KEY, state text NOT NULL, documents_indexed bigint NOT NULL DEFAULT 0,
            channel_cursor bigint NOT NULL DEFAULT 0, message_cursor bigint NOT NULL DEFAULT 0, owner text,
            started_at timestamptz, heartbeat_at timestamptz)""")


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("DROP TABLE search_guilds")
    op.execute("DROP TABLE search_tombstones")
    op.execute("DROP TABLE search_documents")
    op.execute("DROP TEXT SEARCH CONFIGURATION chatstore_search")
    op.execute("DROP TEXT SEARCH DICTIONARY chatstore_english_stem")
