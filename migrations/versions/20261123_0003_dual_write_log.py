"""dual write log

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

Compatibility: adds a table only the dual-write store and the migration commands read; the previous release
ignores it, so this revision can be applied while that release runs.
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dual_write_log',
    sa.Column('channel_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('message_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('pending', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('channel_id', 'message_id', name=op.f('pk_dual_write_log'))
    )
    with op.batch_alter_table('dual_write_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dual_write_log_pending'), ['pending'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('dual_write_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dual_write_log_pending'))

    op.drop_table('dual_write_log')
