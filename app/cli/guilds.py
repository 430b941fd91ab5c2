"""``flask guilds``: guild administration that bypasses permission checks (operators only)."""
from __future__ import annotations

from datetime import datetime, timezone

import click

from app.cli import SNOWFLAKE, CommandGroup, resources
from app.services.guilds import GuildService, MemberView
from app.services.wire import member_json
from models import Ban, Guild, Member, User

guilds_cli = CommandGroup("guilds", help="Administer guilds.")


@guilds_cli.command("create")
@click.argument("name")
@click.option("--owner", "owner_id", type=SNOWFLAKE, required=True, help="The owning user's id.")
def create_guild_command(name: str, owner_id: int) -> None:
    """Create a guild owned by --owner; prints its id alone on stdout."""
    if not 2 <= len(name) <= 100:
        raise click.ClickException("guild name must be 2 to 100 characters")
    res = resources()
    with res.session() as session:
        owner = session.get(User, owner_id)
        if owner is None:
            raise click.ClickException(f"unknown user {owner_id}")
        click.echo(GuildService(session, res.ids, events=res.session_events()).create_guild(owner, name).id)


@guilds_cli.command("add-member")
@click.argument("guild_id", type=SNOWFLAKE)
@click.argument("user_id", type=SNOWFLAKE)
def add_member_command(guild_id: int, user_id: int) -> None:
    """Add USER_ID to GUILD_ID (no-op when already a member)."""
    res = resources()
    with res.session() as session:
        if session.get(Guild, guild_id) is None:
            raise click.ClickException(f"unknown guild {guild_id}")
        if session.get(User, user_id) is None:
            raise click.ClickException(f"unknown user {user_id}")
        if session.get(Ban, (guild_id, user_id)) is not None:
            raise click.ClickException(f"user {user_id} is banned from guild {guild_id}: unban them first")
        if session.get(Member, (guild_id, user_id)) is None:
            member = Member(guild_id=guild_id, user_id=user_id, joined_at=datetime.now(timezone.utc))
            session.add(member)
            res.session_events().record(session, lambda dispatch: [dispatch.guild(
                "GUILD_MEMBER_ADD", member_json(MemberView(member, [])), guild_id=guild_id)])
            session.commit()
            click.echo(f"added user {user_id} to guild {guild_id}", err=True)
        else:
            click.echo(f"user {user_id} is already a member of guild {guild_id}", err=True)
