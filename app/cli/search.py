"""``flask search``: run the search indexer as its own process, rebuild guilds' indexes, show their state."""
from __future__ import annotations

import signal

import click
import gevent
import gevent.event
from sqlalchemy import select
from tqdm import tqdm

from app.cli import SNOWFLAKE, CommandGroup, resources
from app.search.base import IndexState
from app.search.indexer import build_indexer, consumer_name
from app.search.reindex import Reindexer
from models import Guild

search_cli = CommandGroup("search", help="Run the search indexer; rebuild and inspect guilds' search indexes.")


def _resources():
    res = resources()
    if not res.settings.search_enabled:
        raise click.ClickException("search is off in this deployment (SEARCH_ENGINE=off or EVENT_BUS=off)")
    return res


@search_cli.command("indexer")
@click.option("--once", is_flag=True, help="Index what the stream holds now, then exit (no guild rebuilds).")
def indexer_command(once: bool) -> None:
    """Run the search indexer (a consumer of the stream's search group, plus the rebuilds of queued guilds) until
    SIGTERM or SIGINT (for SEARCH_INDEXER=process). Any number may run."""
    indexer = build_indexer(_resources())
    if once:
        click.echo(f"indexed {indexer.drain()} events")
        return
    indexer.start()
    stopped = gevent.event.Event()
    handlers = [gevent.signal_handler(number, stopped.set) for number in (signal.SIGTERM, signal.SIGINT)]
    click.echo(f"search indexer running ({indexer.engine.name} engine, consumer {indexer.consumer}); "
               "SIGTERM or SIGINT stops it", err=True)
    try:
        stopped.wait()
    finally:
        for handler in handlers:
            handler.cancel()
        indexer.stop()
    click.echo("search indexer stopped", err=True)


@search_cli.command("reindex")
@click.option("--guild", "guild_id", type=SNOWFLAKE, help="Only this guild (default: every guild, in id order).")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True),
              help="At most this many messages per second (default: as fast as it goes).")
@click.option("--restart", is_flag=True, help="Start over instead of resuming an interrupted rebuild.")
@click.option("--batch-size", type=click.IntRange(1, 5000), default=500, show_default=True,
              help="Messages per batch (one engine write and one checkpoint each).")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar on stderr.")
def reindex_command(guild_id: int | None, rate: float | None, restart: bool, batch_size: int,
                    progress: bool) -> None:
    """Rebuild guilds' search indexes from the message store, while the indexer keeps indexing new events.

    A rebuild interrupted (even by SIGKILL) resumes from its last batch when run again; each message is indexed
    and counted once. Searches of a guild being rebuilt are answered 202 until it is done.
    """
    res = _resources()
    engine = res.search_engine
    if guild_id is not None:
        guild_ids = [guild_id]
    else:
        with res.engine.begin() as connection:
            guild_ids = list(connection.execute(select(Guild.id).order_by(Guild.id)).scalars())
    owner = f"reindex:{consumer_name()}"
    for guild in guild_ids:
        state = engine.guild_index(guild)
        resuming = not restart and state is not None and state.state is IndexState.INDEXING \
            and state.documents_indexed > 0
        bar = tqdm(desc=f"guild {guild}", unit="msg", disable=not progress, dynamic_ncols=True,
                   initial=state.documents_indexed if resuming else 0)
        reindexer = Reindexer(engine, res.engine, res.message_store, owner=owner, batch_size=batch_size, rate=rate,
                              progress=bar.update)
        if progress:
            bar.total = reindexer.count_messages(guild)
            bar.refresh()
        try:
            finished = reindexer.reindex(guild, restart=restart)
        finally:
            bar.close()
        click.echo(f"guild {guild}: {finished.documents_indexed} messages indexed"
                   f"{' (resumed)' if resuming else ''}")


@search_cli.command("status")
@click.option("--guild", "guild_id", type=SNOWFLAKE, required=True)
def status_command(guild_id: int) -> None:
    """A guild's index state: ready, indexing (with the rebuild's progress) or never indexed."""
    engine = _resources().search_engine
    state = engine.guild_index(guild_id)
    if state is None:
        click.echo(f"guild {guild_id}: never indexed (its first search queues a rebuild)")
        return
    click.echo(f"guild {guild_id}: {state.state.value}, {engine.count_documents(guild_id)} documents"
               + (f", rebuild at channel {state.channel_cursor} by {state.owner}"
                  if state.state is IndexState.INDEXING else ""))
