"""dual write log: writers in flight and the version the secondary holds

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

A replay that copied a message while a dual write of it was still on its way to the secondary could be overtaken
by that write, and a write could clear ``pending`` while an earlier one had not reached the secondary yet. The
log now counts writes in flight and records which version the secondary holds (app.messages.dual).

Compatibility: adds columns with server defaults, which fill the previous release's inserts, so this revision
can be applied while that release runs. An entry the previous release settles meanwhile keeps an old
``synced_version``; the next write of that message leaves it pending and a replay copies it once more.
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('dual_write_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('synced_version', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('writers', sa.Integer(), server_default='0', nullable=False))
    # A settled entry's secondary holds its version; a pending one's holds an older one.
    op.execute("UPDATE dual_write_log SET synced_version = CASE WHEN pending THEN version - 1 ELSE version END")


def downgrade() -> None:
    with op.batch_alter_table('dual_write_log', schema=None) as batch_op:
        batch_op.drop_column('writers')
        batch_op.drop_column('synced_version')
