"""``flask events``: watch the event stream, and run the outbox relay as its own process."""
from __future__ import annotations

import signal

import click
import gevent
import gevent.queue
import orjson

from app.cli import SNOWFLAKE, CommandGroup, resources
from app.events.base import EventBusUnavailable, PositionExpired, partition_of
from app.events.relay import EventRelay
from app.services.channel_writes import StoreChecks

events_cli = CommandGroup("events", help="Watch the event stream; run the outbox relay.")


def _bus():
    res = resources()
    if not res.settings.events_enabled:
        raise click.ClickException("EVENT_BUS=off: this deployment records no events")
    return res.event_bus

#: Events read per call, and how long a followed read waits before asking again.
_PAGE = 100
_FOLLOW_WAIT_SECONDS = 1.0


@events_cli.command("tail")
@click.option("--guild", "guild_id", type=SNOWFLAKE, help="Only this guild's events (read from its partition).")
@click.option("--partition", type=click.IntRange(min=0), help="Only this partition.")
@click.option("--from", "after", metavar="POSITION",
              help="Start after this position of the partition (default: the oldest retained event).")
@click.option("--follow/--no-follow", default=False,
              help="Keep waiting for new events (default: print what is retained, then exit).")
def tail_command(guild_id: int | None, partition: int | None, after: str | None, follow: bool) -> None:
    """Print events as JSON lines, one per event, in each partition's order."""
    bus = _bus()
    if guild_id is not None:
        guild_partition = partition_of(guild_id, None, bus.partitions)
        if partition is not None and partition != guild_partition:
            raise click.ClickException(f"guild {guild_id} is in partition {guild_partition}, not {partition}")
        partition = guild_partition
    if partition is not None and partition >= bus.partitions:
        raise click.ClickException(f"--partition must be below EVENT_PARTITIONS ({bus.partitions})")
    if after is not None and partition is None:
        raise click.ClickException("--from needs --partition or --guild: positions are per partition")
    partitions = [partition] if partition is not None else list(range(bus.partitions))
    found: gevent.queue.Queue = gevent.queue.Queue()
    readers = [gevent.spawn(_read_partition, bus, number, after, follow, found) for number in partitions]
    finished = 0
    try:
        while finished < len(readers):
            item = found.get()
            if item is None:
                finished += 1
            elif isinstance(item, Exception):
                raise click.ClickException(str(item))
            elif guild_id is None or item.guild_id == guild_id:
                click.echo(orjson.dumps(item.dispatch()).decode())
    finally:
        gevent.killall(readers)


def _read_partition(bus, partition: int, after: str | None, follow: bool, found: gevent.queue.Queue) -> None:
    """Put the partition's events on ``found``; then None when done (not following), or the error that stopped it."""
    try:
        while True:
            page = bus.read(partition, after, _PAGE, block_seconds=_FOLLOW_WAIT_SECONDS if follow else 0)
            for event in page:
                found.put(event)
            if page:
                after = page[-1].position
            elif not follow:
                found.put(None)
                return
    except (PositionExpired, EventBusUnavailable, ValueError) as error:
        found.put(error)


@events_cli.command("relay")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Serve this process's Prometheus metrics (outbox depth, relay and consumer-group lag) on "
                   "http://0.0.0.0:PORT/metrics; 0 serves none.")
def relay_command(metrics_port: int) -> None:
    """Run the outbox relay in the foreground until SIGTERM or SIGINT (for EVENT_RELAY=process)."""
    metrics_server = None
    if metrics_port:
        # prometheus_client's own small server: its thread is a greenlet under gevent's patch, like the relay.
        from prometheus_client import start_http_server

        metrics_server, _ = start_http_server(metrics_port, addr="0.0.0.0")
    res = resources()
    relay = EventRelay(res.engine, _bus(), confirm=StoreChecks(res.message_store))
    handlers = [gevent.signal_handler(number, relay.stop) for number in (signal.SIGTERM, signal.SIGINT)]
    click.echo(f"event relay running ({res.event_bus.backend} bus); SIGTERM or SIGINT stops it", err=True)
    try:
        relay.run()
    finally:
        for handler in handlers:
            handler.cancel()
        if metrics_server is not None:
            metrics_server.shutdown()
    click.echo("event relay stopped", err=True)
