"""search index tables of the PostgreSQL engine

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

The PostgreSQL search engine (SEARCH_ENGINE=postgres, app/search/postgres.py) keeps its index in the metadata
database: ``search_documents`` (one row per message, the content as a ``tsvector`` under a GIN index, the
mentioned users as an array under a GIN index), ``search_tombstones`` (deleted messages a late event or a reindex
must not bring back) and ``search_guilds`` (each guild's index state and its reindex checkpoint). Its text search
configuration ``chatstore_search`` is ``simple`` with English Snowball stemming and no stop words (the tokens are
made in Python, app/search/text.py). On SQLite the tables are created too, empty, so the schema is one on both
databases; the SQLite engine keeps its index in a file of its own.

Compatibility: new tables and a new text search configuration only, which the previous release neither reads nor
writes, so this revision can be applied while that release runs; creating them takes no lock on existing tables.
The index is empty afterwards: the first search of each guild queues its rebuild (or run `flask search reindex`).
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("CREATE TEXT SEARCH DICTIONARY chatstore_english_stem (TEMPLATE = snowball, Language = english)")
        op.execute("CREATE TEXT SEARCH CONFIGURATION chatstore_search (COPY = simple)")
        op.execute("ALTER TEXT SEARCH CONFIGURATION chatstore_search ALTER MAPPING FOR asciiword, word, numword, "
                   "asciihword, hword, numhword, hword_asciipart, hword_part, hword_numpart "
                   "WITH chatstore_english_stem")
    op.create_table('search_documents',
    sa.Column('message_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('guild_id', sa.BigInteger(), nullable=False),
    sa.Column('channel_id', sa.BigInteger(), nullable=False),
    sa.Column('author_id', sa.BigInteger(), nullable=False),
    sa.Column('author_type', sa.SmallInteger(), nullable=False),
    sa.Column('has_bits', sa.Integer(), nullable=False),
    sa.Column('pinned', sa.Boolean(), nullable=False),
    sa.Column('mention_everyone', sa.Boolean(), nullable=False),
    sa.Column('mentions', sa.ARRAY(sa.BigInteger()).with_variant(sa.Text(), 'sqlite'), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('body', postgresql.TSVECTOR().with_variant(sa.Text(), 'sqlite'), nullable=False),
    sa.PrimaryKeyConstraint('message_id', name=op.f('pk_search_documents'))
    )
    op.create_index('ix_search_documents_guild', 'search_documents', ['guild_id', 'message_id'])
    op.create_index('ix_search_documents_author', 'search_documents', ['guild_id', 'author_id', 'message_id'])
    op.create_index('ix_search_documents_channel', 'search_documents', ['channel_id', 'message_id'])
    op.create_index('ix_search_documents_body', 'search_documents', ['body'], postgresql_using='gin')
    op.create_index('ix_search_documents_mentions', 'search_documents', ['mentions'], postgresql_using='gin')
    op.create_table('search_tombstones',
    sa.Column('message_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('message_id', name=op.f('pk_search_tombstones'))
    )
    op.create_table('search_guilds',
    sa.Column('guild_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('state', sa.Text(), nullable=False),
    sa.Column('documents_indexed', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('channel_cursor', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('message_cursor', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('owner', sa.Text(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('guild_id', name=op.f('pk_search_guilds'))
    )


def downgrade() -> None:
    op.drop_table('search_guilds')
    op.drop_table('search_tombstones')
    op.drop_index('ix_search_documents_mentions', table_name='search_documents', postgresql_using='gin')
    op.drop_index('ix_search_documents_body', table_name='search_documents', postgresql_using='gin')
    op.drop_index('ix_search_documents_channel', table_name='search_documents')
    op.drop_index('ix_search_documents_author', table_name='search_documents')
    op.drop_index('ix_search_documents_guild', table_name='search_documents')
    op.drop_table('search_documents')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TEXT SEARCH CONFIGURATION chatstore_search")
        op.execute("DROP TEXT SEARCH DICTIONARY chatstore_english_stem")
