"""incoming webhooks, and the webhook columns of messages

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

A new table ``webhooks``: the incoming webhooks of guild text channels (app.services.webhooks), each with only
the SHA-256 of its token (the token is shown once, at creation, as API tokens are). Three nullable columns on
the SQL message store's ``messages`` table name a webhook message's sender: ``webhook_id`` (also its
``author_id``), ``webhook_username`` (the name shown) and ``webhook_avatar_url`` (the execution's override).

``webhooks`` has no metadata-version triggers: no worker keeps webhooks in memory; every execution reads its
webhook from the database.

Compatibility: a new table and nullable columns without a default, which the previous release neither reads nor
writes (it selects its columns by name), so this revision can be applied while that release runs; on PostgreSQL
adding the columns changes only the catalog. The previous release serves a webhook's messages as sent by a
deleted user. A downgrade drops the webhooks (their tokens stop working) and the columns; the messages stay, shown
as sent by a deleted user.
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('webhooks',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('type', sa.Integer(), nullable=False),
    sa.Column('guild_id', sa.BigInteger(), nullable=False),
    sa.Column('channel_id', sa.BigInteger(), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=True),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('token_sha256', sa.LargeBinary(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_webhooks_channel_id_channels'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['guild_id'], ['guilds.id'], name=op.f('fk_webhooks_guild_id_guilds'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_webhooks_user_id_users'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhooks'))
    )
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhooks_channel_id'), ['channel_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhooks_guild_id'), ['guild_id'], unique=False)
    with op.batch_alter_table('messages') as batch:
        batch.add_column(sa.Column('webhook_id', sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column('webhook_username', sa.Text(), nullable=True))
        batch.add_column(sa.Column('webhook_avatar_url', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('messages') as batch:
        batch.drop_column('webhook_avatar_url')
        batch.drop_column('webhook_username')
        batch.drop_column('webhook_id')
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhooks_guild_id'))
        batch_op.drop_index(batch_op.f('ix_webhooks_channel_id'))
    op.drop_table('webhooks')
