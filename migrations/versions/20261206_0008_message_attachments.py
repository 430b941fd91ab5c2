"""attachments and components of messages, and DM channels

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

Two nullable text columns on the SQL message store's ``messages`` table: ``attachments_json`` (the message's
files, whose bytes live in the blob store, app.blobs) and ``components_json`` (Discord's message components).
Both hold JSON and are NULL for a message without any. A new table ``dm_channels`` names the two users of each
DM channel (a ``channels`` row of type 1 without a guild), the lower id first, unique per pair.

``dm_channels`` has no metadata-version triggers: its rows are only inserted with their ``channels`` row and
deleted with it (ON DELETE CASCADE), and the ``channels`` triggers bump the version for both.

Compatibility: nullable columns without a default, which the previous release neither reads nor writes (it
selects its columns by name), so this revision can be applied while that release runs; on PostgreSQL adding
them changes only the catalog, without rewriting the table. Messages the previous release writes meanwhile
simply have no attachments. The previous release does not know DM channels: it answers their routes as for a
channel outside any guild (403). A downgrade drops the columns and with them every message's attachment records
(the files stay in the blob store), and the DM pairs (their channels stay, unreachable).
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('messages') as batch:
        batch.add_column(sa.Column('attachments_json', sa.Text(), nullable=True))
        batch.add_column(sa.Column('components_json', sa.Text(), nullable=True))
    op.create_table('dm_channels',
    sa.Column('channel_id', sa.BigInteger(), nullable=False),
    sa.Column('user_low_id', sa.BigInteger(), nullable=False),
    sa.Column('user_high_id', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_dm_channels_channel_id_channels'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_low_id'], ['users.id'], name=op.f('fk_dm_channels_user_low_id_users'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_high_id'], ['users.id'], name=op.f('fk_dm_channels_user_high_id_users'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('channel_id', name=op.f('pk_dm_channels')),
    sa.UniqueConstraint('user_low_id', 'user_high_id', name=op.f('uq_dm_channels_user_low_id'))
    )
    with op.batch_alter_table('dm_channels', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dm_channels_user_high_id'), ['user_high_id'], unique=False)


def downgrade() -> None:
    op.drop_table('dm_channels')
    with op.batch_alter_table('messages') as batch:
        batch.drop_column('components_json')
        batch.drop_column('attachments_json')
