"""``flask`` command groups for admin work. Each group is a small module; errors are one line, exit code 1."""
from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app.ids import InvalidSnowflake, parse_snowflake


class OneLineCommand(click.Command):
    """Usage errors as one line (``Error: ...``) instead of click's usage block, for scripts that parse output."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise click.ClickException(f"{ctx.command_path}: {exc.format_message()}") from None


class CommandGroup(AppGroup):
    command_class = OneLineCommand


class SnowflakeType(click.ParamType):
    name = "snowflake"

    def convert(self, value, param, ctx) -> int:
        try:
            return parse_snowflake(value)
        except InvalidSnowflake:
            self.fail(f"{value!r} is not a snowflake id", param, ctx)


SNOWFLAKE = SnowflakeType()


def resources():
    return current_app.extensions["chatstore"]


def register(app: Flask) -> None:
    from app.cli.db import db_cli
    from app.cli.events import events_cli
    from app.cli.guilds import guilds_cli
    from app.cli.messages import messages_cli
    from app.cli.migration import COMMANDS as MIGRATION_COMMANDS
    from app.cli.scylla import scylla_cli
    from app.cli.search import search_cli
    from app.cli.users import demo_cli, tokens_cli, users_cli

    for command in MIGRATION_COMMANDS:
        messages_cli.add_command(command)
    for group in (users_cli, tokens_cli, guilds_cli, messages_cli, db_cli, demo_cli, scylla_cli, events_cli,
                  search_cli):
        app.cli.add_command(group)

    @app.shell_context_processor
    def _shell_namespace():
        import models
        from app.services.channels import ChannelService
        from app.services.guilds import GuildService

        res = app.extensions["chatstore"]
        namespace = {name: getattr(models, name) for name in models.__all__}
        namespace.update(session=res.session(), resources=res, store=res.message_store, ids=res.ids,
                         GuildService=GuildService, ChannelService=ChannelService)
        return namespace
