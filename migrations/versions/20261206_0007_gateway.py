"""gateway sessions, identifies, and users' privileged intents

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

The Discord gateway (app.gateway): ``gateway_sessions`` keeps resumable sessions so that a RESUME can land on
any worker, ``gateway_identifies`` records accepted IDENTIFYs for the session start limit, and
``users.privileged_intents`` holds the privileged intents an admin allowed a bot (``flask users intents``).

Compatibility: two new tables the previous release never touches, and a column with a server default (0: no
privileged intents) that the previous release ignores; adding a column with a constant default is a catalogue
change on PostgreSQL (no table rewrite), so this revision can be applied while that release runs.
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('gateway_sessions',
    sa.Column('session_id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.LargeBinary(), nullable=False),
    sa.Column('open', sa.Boolean(), nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=False),
    sa.Column('saved_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('session_id', name=op.f('pk_gateway_sessions'))
    )
    op.create_index(op.f('ix_gateway_sessions_expires_at'), 'gateway_sessions', ['expires_at'], unique=False)
    op.create_table('gateway_identifies',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('identified_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gateway_identifies'))
    )
    op.create_index('ix_gateway_identifies_user_time', 'gateway_identifies', ['user_id', 'identified_at'],
                    unique=False)
    op.add_column('users', sa.Column('privileged_intents', sa.BigInteger(), server_default='0', nullable=False))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite has it since 3.35): a batch copy of the table would drop its metadata-version
    # triggers (revision 0005).
    op.drop_column('users', 'privileged_intents')
    op.drop_index('ix_gateway_identifies_user_time', table_name='gateway_identifies')
    op.drop_table('gateway_identifies')
    op.drop_index(op.f('ix_gateway_sessions_expires_at'), table_name='gateway_sessions')
    op.drop_table('gateway_sessions')
