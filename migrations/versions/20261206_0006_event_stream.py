"""event outbox and the SQL event bus

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

The outbox that writers append to in their own transaction, the relay's lease (SQLite has no advisory locks),
and the SQL bus: a log with a dense position per partition, the partitions' counters, and consumer groups'
offsets and pending deliveries (app.events).

Compatibility: new tables only, which the previous release neither reads nor writes, so this revision can be
applied while that release runs. Creating empty tables takes no lock on existing ones; env.py's lock and
statement timeouts still apply on PostgreSQL.
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('event_outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('unconfirmed', sa.LargeBinary(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_outbox'))
    )
    op.create_table('event_relay_lease',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('holder', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_relay_lease'))
    )
    op.create_table('event_stream',
    sa.Column('partition', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('position', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('event_id', sa.BigInteger(), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('partition', 'position', name=op.f('pk_event_stream'))
    )
    op.create_index('ix_event_stream_published_at', 'event_stream', ['published_at'], unique=False)
    op.create_table('event_partitions',
    sa.Column('partition', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('last_position', sa.BigInteger(), nullable=False),
    sa.Column('trimmed_through', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('partition', name=op.f('pk_event_partitions'))
    )
    op.create_table('event_group_offsets',
    sa.Column('group_name', sa.String(length=200), nullable=False),
    sa.Column('partition', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('delivered_through', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('group_name', 'partition', name=op.f('pk_event_group_offsets'))
    )
    op.create_table('event_group_pending',
    sa.Column('group_name', sa.String(length=200), nullable=False),
    sa.Column('partition', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('position', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('consumer', sa.String(length=200), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deliveries', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('group_name', 'partition', 'position', name=op.f('pk_event_group_pending'))
    )
    op.create_index('ix_event_group_pending_group_name_delivered_at', 'event_group_pending',
                    ['group_name', 'delivered_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_event_group_pending_group_name_delivered_at', table_name='event_group_pending')
    op.drop_table('event_group_pending')
    op.drop_table('event_group_offsets')
    op.drop_table('event_partitions')
    op.drop_index('ix_event_stream_published_at', table_name='event_stream')
    op.drop_table('event_stream')
    op.drop_table('event_relay_lease')
    op.drop_table('event_outbox')
