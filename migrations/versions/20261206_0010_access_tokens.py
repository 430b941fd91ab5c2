"""OAuth2-style access tokens

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

Access tokens by which a user consents to a bot acting for them within scopes (``guilds.join``: being added to
a guild with PUT /guilds/{id}/members/{user_id}), minted by ``flask tokens grant``; only their secrets' SHA-256 is
kept (app.auth.tokens).

Compatibility: a new table only, which the previous release neither reads nor writes, so this revision can be
applied while that release runs. The previous release, though, adds members without any token; run the new
release's code before relying on the consent it requires. Creating an empty table takes no lock on existing ones.
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('access_tokens',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('client_id', sa.BigInteger(), nullable=False),
    sa.Column('scopes', sa.String(length=200), nullable=False),
    sa.Column('secret_sha256', sa.LargeBinary(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['users.id'], name=op.f('fk_access_tokens_client_id_users'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_access_tokens_user_id_users'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_tokens'))
    )
    with op.batch_alter_table('access_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_access_tokens_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_access_tokens_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('access_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_access_tokens_user_id'))
        batch_op.drop_index(batch_op.f('ix_access_tokens_client_id'))
    op.drop_table('access_tokens')
