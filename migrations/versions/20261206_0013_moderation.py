"""moderation: bans, the audit log, members' mute/deaf, and the messages' author index

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06

New tables ``bans`` (a guild's banned users) and ``audit_log_entries`` (Discord's audit log). ``members`` gets
``mute`` and ``deaf`` (false by default). The SQL message store's ``messages`` gets ``guild_id`` (the guild of the
message's channel, NULL in DMs) and the index ``ix_messages_guild_author`` on (guild_id, author_id, message_id):
a ban's purge reads one author's messages of a window in one range of it, whatever the guild's history.
Existing messages get their channel's guild in the upgrade.

Compatibility: new tables and nullable or defaulted columns, which the previous release neither reads nor
writes (it selects its columns by name), so this revision can be applied while that release runs; messages it
writes meanwhile have no guild_id and are not found by a ban's purge (rerun the UPDATE below afterwards to index
them). On PostgreSQL the index is built here with a plain CREATE INDEX, which blocks writes to ``messages`` while
it runs: for a large table, build it by hand with CREATE INDEX CONCURRENTLY first (same name, after adding the
column), and this revision skips it. The guild_id backfill rewrites every guild message row once; on a large
table run it in batches by channel beforehand.
"""
import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('bans',
    sa.Column('guild_id', sa.BigInteger(), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.String(length=512), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['guild_id'], ['guilds.id'], name=op.f('fk_bans_guild_id_guilds'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_bans_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('guild_id', 'user_id', name=op.f('pk_bans'))
    )
    op.create_table('audit_log_entries',
    sa.Column('guild_id', sa.BigInteger(), nullable=False),
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('action_type', sa.Integer(), nullable=False),
    sa.Column('target_id', sa.BigInteger(), nullable=True),
    sa.Column('changes', sa.Text(), nullable=True),
    sa.Column('options', sa.Text(), nullable=True),
    sa.Column('reason', sa.String(length=512), nullable=True),
    sa.ForeignKeyConstraint(['guild_id'], ['guilds.id'], name=op.f('fk_audit_log_entries_guild_id_guilds'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('guild_id', 'id', name=op.f('pk_audit_log_entries'))
    )
    op.create_index('ix_audit_log_entries_guild_user', 'audit_log_entries', ['guild_id', 'user_id', 'id'])
    op.create_index('ix_audit_log_entries_guild_action', 'audit_log_entries', ['guild_id', 'action_type', 'id'])
    with op.batch_alter_table('members') as batch:
        batch.add_column(sa.Column('mute', sa.Boolean(), server_default='0', nullable=False))
        batch.add_column(sa.Column('deaf', sa.Boolean(), server_default='0', nullable=False))
    with op.batch_alter_table('messages') as batch:
        batch.add_column(sa.Column('guild_id', sa.BigInteger(), nullable=True))
    op.execute("UPDATE messages SET guild_id = (SELECT channels.guild_id FROM channels "
               "WHERE channels.id = messages.channel_id)")
    bind = op.get_bind()
    existing = {index['name'] for index in sa.inspect(bind).get_indexes('messages')}
    if 'ix_messages_guild_author' not in existing:
        op.create_index('ix_messages_guild_author', 'messages', ['guild_id', 'author_id', 'message_id'])


def downgrade() -> None:
    op.drop_index('ix_messages_guild_author', table_name='messages')
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+ too): a batch rebuild on SQLite would drop the members
    # table's metadata-version triggers (revision 0005).
    op.execute("ALTER TABLE messages DROP COLUMN guild_id")
    op.execute("ALTER TABLE members DROP COLUMN deaf")
    op.execute("ALTER TABLE members DROP COLUMN mute")
    op.drop_index('ix_audit_log_entries_guild_action', table_name='audit_log_entries')
    op.drop_index('ix_audit_log_entries_guild_user', table_name='audit_log_entries')
    op.drop_table('audit_log_entries')
    op.drop_table('bans')
