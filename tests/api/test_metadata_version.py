"""The triggers of migration 0005: every write to metadata that workers keep in memory bumps
``metadata_version``, column by column, on the migrated schema of each database; the columns that change with
traffic do not."""
from __future__ import annotations

from sqlalchemy import delete, select, update

from models import Channel, Guild, Member, MemberRole, MetadataVersion, PermissionOverwrite, Role, Token, User

#: Kept tables, children first, with the columns whose updates must not bump the version.
KEPT = {PermissionOverwrite: set(), MemberRole: set(), Member: set(), Role: set(),
        Channel: {"last_message_id", "messages_version"}, Token: {"last_used_at"}, Guild: set(), User: set()}


def version(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(MetadataVersion.version)).scalar_one()


def populate(make) -> None:
    owner, member = make.actor("owner"), make.actor("member")
    guild_id, channel_id = make.guild(owner)
    role_id = make.role(guild_id)
    make.member(guild_id, member, roles=[role_id])
    make.overwrite(channel_id, role_id, 0, allow=1)


def test_inserts_bump_the_version(resources, make):
    before = version(resources.engine)
    populate(make)
    assert version(resources.engine) > before
    # One insert of each kind, each bumping on its own.
    steps = []
    owner = make.actor("another")
    steps.append(version(resources.engine))
    guild_id, channel_id = make.guild(owner)
    steps.append(version(resources.engine))
    make.role(guild_id)
    steps.append(version(resources.engine))
    make.channel(guild_id)
    steps.append(version(resources.engine))
    assert steps == sorted(set(steps)), steps


def test_every_column_update_bumps_the_version_but_the_traffic_columns(resources, make):
    populate(make)
    engine = resources.engine
    for model, ignored in KEPT.items():
        table = model.__table__
        for column in table.columns:
            before = version(engine)
            with engine.begin() as connection:
                connection.execute(update(table).values({column.name: column}))
            assert (version(engine) > before) == (column.name not in ignored), f"{table.name}.{column.name}"


def test_deletes_bump_the_version(resources, make):
    populate(make)
    engine = resources.engine
    for model in KEPT:
        before = version(engine)
        with engine.begin() as connection:
            assert connection.execute(delete(model.__table__)).rowcount > 0
        assert version(engine) > before, model.__tablename__
