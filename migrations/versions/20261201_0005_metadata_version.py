"""metadata version, and a version of each channel's messages

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

Each worker keeps tokens, users and channel permissions in memory (app/read_cache.py) and checks them
against ``metadata_version`` on every request. Triggers bump that version on any write to the tables they come
from, whoever writes (the service, ``flask`` commands, a psql session), except the columns that change with
traffic and that the cache does not keep: ``tokens.last_used_at``, ``channels.last_message_id`` and
``channels.messages_version``. ``channels.messages_version`` grows with every write to a channel's messages, so
a worker can keep a page it has read until the channel changes.

On SQLite, a later revision that rebuilds one of these tables in batch mode drops its triggers and must create
them again; tests/api/test_metadata_version.py checks every column of every table against the migrated schema.

Compatibility: a new table, a new column with a default, and triggers. The previous release neither reads nor
bumps the versions; workers of this release may serve a stale page for a channel that a previous-release
worker writes to, so do not run both releases against one database at once.
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

#: Tables whose writes change the metadata version, with the columns whose updates do not (None: every update
#: does).
WATCHED = {
    "users": None,
    "tokens": {"last_used_at"},
    "guilds": None,
    "roles": None,
    "members": None,
    "member_roles": None,
    "channels": {"last_message_id", "messages_version"},
    "permission_overwrites": None,
}


def _watched_columns(table: str) -> list[str] | None:
    ignored = WATCHED[table]
    if ignored is None:
        return None
    columns = [column["name"] for column in sa.inspect(op.get_bind()).get_columns(table)]
    return [column for column in columns if column not in ignored]


def upgrade() -> None:
    op.create_table('metadata_version',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_metadata_version'))
    )
    op.execute("INSERT INTO metadata_version (id, version) VALUES (1, 1)")
    with op.batch_alter_table('channels', schema=None) as batch_op:
        batch_op.add_column(sa.Column('messages_version', sa.BigInteger(), server_default='0', nullable=False))

    bump = "UPDATE metadata_version SET version = version + 1 WHERE id = 1"
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("CREATE FUNCTION bump_metadata_version() RETURNS trigger LANGUAGE plpgsql AS "
                   f"$$ BEGIN {bump}; RETURN NULL; END $$")
    for table in WATCHED:
        columns = _watched_columns(table)
        update = "UPDATE" if columns is None else f"UPDATE OF {', '.join(columns)}"
        if postgres:
            # Once per statement, not per row: a write of many rows costs one bump.
            op.execute(f"CREATE TRIGGER bump_metadata_version_{table} AFTER INSERT OR DELETE OR {update} "
                       f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION bump_metadata_version()")
        else:
            for event in ("INSERT", "DELETE", update):
                name = f"bump_metadata_version_{table}_{event.split()[0].lower()}"
                op.execute(f"CREATE TRIGGER {name} AFTER {event} ON {table} BEGIN {bump}; END")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in WATCHED:
        if postgres:
            op.execute(f"DROP TRIGGER bump_metadata_version_{table} ON {table}")
        else:
            for event in ("insert", "delete", "update"):
                op.execute(f"DROP TRIGGER bump_metadata_version_{table}_{event}")
    if postgres:
        op.execute("DROP FUNCTION bump_metadata_version()")
    with op.batch_alter_table('channels', schema=None) as batch_op:
        batch_op.drop_column('messages_version')
    op.drop_table('metadata_version')
