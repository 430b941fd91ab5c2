"""``flask users``, ``flask tokens`` and ``flask demo``."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import click
from sqlalchemy import select

from app.auth.tokens import ACCESS_TOKEN_LIFETIME, SCOPES, issue_access_token, issue_token, revoke_token
from app.cli import SNOWFLAKE, CommandGroup, resources
from app.gateway.protocol import PRIVILEGED_BY_NAME, PRIVILEGED_INTENTS
from app.services.guilds import GuildService
from models import Channel, Guild, User

users_cli = CommandGroup("users", help="Manage users.")
tokens_cli = CommandGroup("tokens", help="Issue and revoke API tokens and OAuth2-style access tokens.")
demo_cli = CommandGroup("demo", help="Demo data for a first run.")
DEMO_BOT = "demo-bot"


def create_user(session, ids, username: str, bot: bool) -> User:
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise click.ClickException(f"username {username!r} is taken")
    user = User(id=ids.next_id(), username=username, bot=bot, created_at=datetime.now(timezone.utc))
    session.add(user)
    session.commit()
    return user


@users_cli.command("create")
@click.argument("username")
@click.option("--bot", is_flag=True, help="Create a bot user.")
def create_user_command(username: str, bot: bool) -> None:
    """Create a user; prints its id alone on stdout."""
    if not 2 <= len(username) <= 32:
        raise click.ClickException("username must be 2 to 32 characters")
    res = resources()
    with res.session() as session:
        click.echo(create_user(session, res.ids, username, bot).id)


@users_cli.command("intents")
@click.argument("user_id", type=SNOWFLAKE)
@click.option("--allow", "allowed", multiple=True, type=click.Choice(sorted(PRIVILEGED_BY_NAME)),
              help="A privileged gateway intent to allow (repeatable).")
@click.option("--deny", "denied", multiple=True, type=click.Choice(sorted(PRIVILEGED_BY_NAME)),
              help="A privileged gateway intent to refuse again (repeatable).")
def intents_command(user_id: int, allowed: tuple[str, ...], denied: tuple[str, ...]) -> None:
    """Allow or deny USER_ID the privileged gateway intents; prints those it now has."""
    with resources().session() as session:
        user = session.get(User, user_id)
        if user is None:
            raise click.ClickException(f"unknown user {user_id}")
        for name in allowed:
            user.privileged_intents |= int(PRIVILEGED_BY_NAME[name])
        for name in denied:
            user.privileged_intents &= ~int(PRIVILEGED_BY_NAME[name])
        session.commit()
        click.echo(" ".join(n for n, bit in sorted(PRIVILEGED_BY_NAME.items()) if user.privileged_intents & bit)
                   or "(none)")


@tokens_cli.command("create")
@click.argument("user_id", type=SNOWFLAKE)
def create_token_command(user_id: int) -> None:
    """Issue a token for USER_ID; prints the token alone on stdout (it is never shown again)."""
    res = resources()
    with res.session() as session:
        if session.get(User, user_id) is None:
            raise click.ClickException(f"unknown user {user_id}")
        issued = issue_token(session, res.ids.next_id(), user_id)
        session.commit()
    click.echo(issued.value)


@tokens_cli.command("grant")
@click.argument("user_id", type=SNOWFLAKE)
@click.option("--client", "client_id", type=SNOWFLAKE, required=True,
              help="The bot (its own application) that may act for the user.")
@click.option("--scope", "scopes", type=click.Choice(SCOPES), multiple=True, required=True,
              help="What the bot may do for the user (repeatable).")
@click.option("--expires-in", type=click.IntRange(60, 366 * 24 * 3600),
              default=int(ACCESS_TOKEN_LIFETIME.total_seconds()), show_default=True, help="Lifetime in seconds.")
def grant_token_command(user_id: int, client_id: int, scopes: tuple[str, ...], expires_in: int) -> None:
    """Record USER_ID's consent to a bot acting for them (OAuth2's access token, e.g. --scope guilds.join for
    PUT /guilds/{id}/members/USER_ID); prints the access token alone on stdout (it is never shown again)."""
    res = resources()
    with res.session() as session:
        for role, wanted in (("user", user_id), ("client", client_id)):
            if session.get(User, wanted) is None:
                raise click.ClickException(f"unknown {role} {wanted}")
        if not session.get(User, client_id).bot:
            raise click.ClickException(f"client {client_id} is not a bot")
        issued = issue_access_token(session, res.ids.next_id(), user_id, client_id, scopes,
                                    timedelta(seconds=expires_in))
        session.commit()
    click.echo(issued.value)


@tokens_cli.command("revoke")
@click.argument("token_id", type=SNOWFLAKE)
def revoke_token_command(token_id: int) -> None:
    """Revoke the API or access token TOKEN_ID (the id is the part of the token before the dot,
    base64-decoded)."""
    with resources().session() as session:
        if not revoke_token(session, token_id):
            raise click.ClickException(f"no live token {token_id}")
        session.commit()
    click.echo(f"revoked token {token_id}", err=True)


@demo_cli.command("bootstrap")
def bootstrap_command() -> None:
    """Create a demo bot, guild and channel once, and print their ids and the bot's token."""
    res = resources()
    with res.session() as session:
        bot = session.scalar(select(User).where(User.username == DEMO_BOT))
        if bot is not None:
            guild = session.scalar(select(Guild).where(Guild.owner_id == bot.id).order_by(Guild.id))
            channel = session.scalar(select(Channel).where(Channel.guild_id == guild.id).order_by(Channel.id))
            click.echo(f"demo data exists: bot {bot.id}, guild {guild.id}, channel {channel.id} "
                       f"(new token: flask tokens create {bot.id})")
            return
        bot = create_user(session, res.ids, DEMO_BOT, bot=True)
        # The demo bot may use every privileged intent, so that `make run` serves a bot written the usual way.
        bot.privileged_intents = PRIVILEGED_INTENTS
        guild = GuildService(session, res.ids, events=res.session_events()).create_guild(bot, "Demo guild")
        channel = session.scalar(select(Channel).where(Channel.guild_id == guild.id))
        issued = issue_token(session, res.ids.next_id(), bot.id)
        session.commit()
    click.echo(f"demo bot id:   {bot.id}\ndemo guild id: {guild.id}\ndemo channel:  {channel.id}\n"
               f"bot token:     {issued.value}   (shown once; keep it)")
