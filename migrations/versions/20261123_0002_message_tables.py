"""message tables

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

Tables of the SQL message backend (app.messages.sql): messages keyed (channel_id, bucket, message_id), the
per-channel bucket index, reactions, pins and nonces. ``mentions`` and ``mention_roles`` are JSON arrays of ids
(NULL when empty).

Compatibility: only new tables; the previous release never reads them, so it keeps working while this revision
is applied and after. Downgrading drops every stored message.
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('channel_buckets',
    sa.Column('channel_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('bucket', sa.Integer(), autoincrement=False, nullable=False),
    sa.PrimaryKeyConstraint('channel_id', 'bucket', name=op.f('pk_channel_buckets'))
    )
    op.create_table('message_nonces',
    sa.Column('channel_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('author_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('nonce', sa.Text(), nullable=False),
    sa.Column('message_id', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('channel_id', 'author_id', 'nonce', name=op.f('pk_message_nonces'))
    )
    op.create_table('messages',
    sa.Column('channel_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('bucket', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('message_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('author_id', sa.BigInteger(), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('type', sa.Integer(), nullable=False),
    sa.Column('flags', sa.Integer(), nullable=False),
    sa.Column('tts', sa.Boolean(), nullable=False),
    sa.Column('mention_everyone', sa.Boolean(), nullable=False),
    sa.Column('mentions', sa.Text(), nullable=True),
    sa.Column('mention_roles', sa.Text(), nullable=True),
    sa.Column('embeds_json', sa.Text(), nullable=True),
    sa.Column('nonce', sa.Text(), nullable=True),
    sa.Column('pinned', sa.Boolean(), nullable=False),
    sa.Column('edited_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reference_message_id', sa.BigInteger(), nullable=True),
    sa.Column('reference_channel_id', sa.BigInteger(), nullable=True),
    sa.Column('reference_guild_id', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('channel_id', 'bucket', 'message_id', name=op.f('pk_messages'))
    )
    op.create_table('pins',
    sa.Column('channel_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('message_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('pinned_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('channel_id', 'message_id', name=op.f('pk_pins'))
    )
    with op.batch_alter_table('pins', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pins_channel_id_pinned_at'), ['channel_id', 'pinned_at'], unique=False)

    op.create_table('reactions',
    sa.Column('channel_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('message_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('emoji', sa.String(length=128), nullable=False),
    sa.Column('user_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('reacted_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('channel_id', 'message_id', 'emoji', 'user_id', name=op.f('pk_reactions'))
    )


def downgrade() -> None:
    op.drop_table('reactions')
    with op.batch_alter_table('pins', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pins_channel_id_pinned_at'))

    op.drop_table('pins')
    op.drop_table('messages')
    op.drop_table('message_nonces')
    op.drop_table('channel_buckets')
