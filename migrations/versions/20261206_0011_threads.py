"""threads and their members

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

A thread is a row of ``channels`` (type 10, 11 or 12, ``parent_id`` its parent channel) with a row of
``threads`` for Discord's thread metadata and counters; ``thread_members`` holds who joined it. Writes to
``thread_members`` bump the metadata version like the other tables of migration 0005, because who may see a
private thread depends on them and workers keep users' permissions in channels. ``threads`` is not watched: its
counters change with every message, and no worker keeps it.

Compatibility: new tables only, which the previous release neither reads nor writes, so this revision can be
applied while that release runs. The previous release lists thread channels among a guild's channels and
checks sends in them against the thread's own (empty) overwrites; run the new release before creating threads.
Creating empty tables takes no lock on existing ones.
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_BUMP = "UPDATE metadata_version SET version = version + 1 WHERE id = 1"


def upgrade() -> None:
    op.create_table('threads',
    sa.Column('channel_id', sa.BigInteger(), nullable=False),
    sa.Column('guild_id', sa.BigInteger(), nullable=False),
    sa.Column('parent_id', sa.BigInteger(), nullable=False),
    sa.Column('owner_id', sa.BigInteger(), nullable=False),
    sa.Column('archived', sa.Boolean(), nullable=False),
    sa.Column('auto_archive_duration', sa.Integer(), nullable=False),
    sa.Column('archive_timestamp', sa.DateTime(timezone=True), nullable=False),
    sa.Column('locked', sa.Boolean(), nullable=False),
    sa.Column('invitable', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('message_count', sa.Integer(), nullable=False),
    sa.Column('total_message_sent', sa.Integer(), nullable=False),
    sa.Column('member_count', sa.Integer(), nullable=False),
    sa.Column('applied_tags', sa.Text(), nullable=False),
    sa.Column('flags', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_threads_channel_id_channels'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['guild_id'], ['guilds.id'], name=op.f('fk_threads_guild_id_guilds'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['parent_id'], ['channels.id'], name=op.f('fk_threads_parent_id_channels'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('channel_id', name=op.f('pk_threads'))
    )
    with op.batch_alter_table('threads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_threads_guild_id'), ['guild_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_threads_parent_id'), ['parent_id'], unique=False)

    op.create_table('thread_members',
    sa.Column('thread_id', sa.BigInteger(), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('join_timestamp', sa.DateTime(timezone=True), nullable=False),
    sa.Column('flags', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['thread_id'], ['channels.id'], name=op.f('fk_thread_members_thread_id_channels'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_thread_members_user_id_users'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('thread_id', 'user_id', name=op.f('pk_thread_members'))
    )
    with op.batch_alter_table('thread_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_thread_members_user_id'), ['user_id'], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE TRIGGER bump_metadata_version_thread_members AFTER INSERT OR DELETE OR UPDATE "
                   "ON thread_members FOR EACH STATEMENT EXECUTE FUNCTION bump_metadata_version()")
    else:
        for event in ("INSERT", "DELETE", "UPDATE"):
            op.execute(f"CREATE TRIGGER bump_metadata_version_thread_members_{event.lower()} AFTER {event} "
                       f"ON thread_members BEGIN {_BUMP}; END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER bump_metadata_version_thread_members ON thread_members")
    else:
        for event in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER bump_metadata_version_thread_members_{event}")
    with op.batch_alter_table('thread_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_thread_members_user_id'))
    op.drop_table('thread_members')
    with op.batch_alter_table('threads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_threads_parent_id'))
        batch_op.drop_index(batch_op.f('ix_threads_guild_id'))
    op.drop_table('threads')
