"""``flask messages migrate | verify | replay``: move messages between stores while serving.

Runbook (docs/scylla.md): enable dual writes, backfill with ``migrate``, ``verify``, switch reads, stop dual
writes. Each command is safe to stop and rerun.

The commands copy in the direction the running service's dual store does: from ``DUAL_PRIMARY`` (the store reads
come from, whose state is the acknowledged one) to ``DUAL_SECONDARY``. They take that direction from the same
settings as the service and refuse to run without a dual store, since copying the other way over a write that
reached the primary only deletes an acknowledged message.
"""
from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy import select
from tqdm import tqdm

from app.cli import SNOWFLAKE, resources
from app.messages import BACKENDS
from app.messages.base import MessageStore
from app.messages.dual import WriteLog, replay
from app.messages.migration import Backfill, Checkpoint, repair, verify
from models import Channel

STORE_NAMES = ("scylla", "sql")


class Stores:
    """The dual store's primary (the source: its state is what clients were answered) and secondary (the
    target), built from the settings as the service builds them; a context manager that closes both."""

    def __init__(self, destination: str | None = None):
        res = resources()
        settings = res.settings
        if settings.message_store != "dual":
            raise click.ClickException(
                f"MESSAGE_STORE is {settings.message_store!r}, not 'dual': run this command with the running "
                "service's MESSAGE_STORE=dual, DUAL_PRIMARY and DUAL_SECONDARY, which say the direction to copy "
                "in (from the primary to the secondary)")
        if destination is not None and destination != settings.dual_secondary:
            raise click.ClickException(
                f"--to {destination} but DUAL_SECONDARY is {settings.dual_secondary!r}: the copy goes from "
                f"DUAL_PRIMARY ({settings.dual_primary}) to DUAL_SECONDARY, as the service's dual writes do")
        self.source_name, self.target_name = settings.dual_primary, settings.dual_secondary
        self.source: MessageStore = BACKENDS[settings.dual_primary](settings, res.engine)
        try:
            self.target: MessageStore = BACKENDS[settings.dual_secondary](settings, res.engine)
        except BaseException:
            self.source.close()
            raise
        self.write_log = WriteLog(res.engine, stale_writer_seconds=settings.dual_stale_writer_seconds)

    def __enter__(self) -> Stores:
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            self.target.close()
        finally:
            self.source.close()


def _channel_ids(chosen: tuple[int, ...]) -> list[int]:
    if chosen:
        return list(chosen)
    with resources().session() as session:
        return list(session.scalars(select(Channel.id).order_by(Channel.id)))


@click.command("migrate")
@click.option("--to", "destination", type=click.Choice(STORE_NAMES), required=True,
              help="The store to copy into; must be DUAL_SECONDARY.")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="SQLite file recording progress; rerun with it to resume.  [default: var/migrate-to-STORE.sqlite3]")
@click.option("--rate", type=click.FloatRange(min=1), default=None, help="At most this many messages per second.")
@click.option("--concurrency", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Channels copied at once.")
@click.option("--channel", "channels", type=SNOWFLAKE, multiple=True, help="Only these channels (repeatable).")
@click.option("--dry-run", is_flag=True, help="Read and count what would be copied; write nothing.")
def migrate_command(destination: str, checkpoint: Path | None, rate: float | None, concurrency: int,
                    channels: tuple[int, ...], dry_run: bool) -> None:
    """Copy every message (with reactions and pins) from DUAL_PRIMARY into DUAL_SECONDARY, resumably."""
    checkpoint = checkpoint or Path("var") / f"migrate-to-{destination}.sqlite3"
    progress_file = checkpoint if not dry_run else checkpoint.with_suffix(".dry-run.sqlite3")
    with Stores(destination) as stores:
        source, target, write_log = stores.source, stores.target, stores.write_log
        state = Checkpoint(progress_file)
        channel_ids = _channel_ids(channels)
        try:
            replayed = _replay(source, target, write_log)
            backfill = Backfill(source, target, write_log, state, concurrency=concurrency, rate=rate,
                                dry_run=dry_run)
            with tqdm(total=backfill.remaining(channel_ids), unit="msg", file=click.get_text_stream("stderr"),
                      disable=None, desc="dry run" if dry_run else "copying") as bar:
                backfill.on_progress = bar.update
                result = backfill.run(channel_ids)
            replayed += _replay(source, target, write_log)
        finally:
            state.close()
            if dry_run:
                progress_file.unlink(missing_ok=True)
    verb = "would copy" if dry_run else "copied"
    click.echo(f"{verb} {result.copied} messages of {result.channels} channels from {stores.source_name} to "
               f"{stores.target_name} in {result.seconds:.1f}s "
               f"({result.rate:.0f} msg/s); re-synced {result.resynced} written meanwhile; "
               f"replayed {replayed} pending dual writes")


def _replay(source, target, write_log: WriteLog) -> int:
    """Settle every pending entry that no write is in flight for; stop when a pass settles nothing (what is
    left is being written to right now, and those writes or a later replay settle it)."""
    replayed = 0
    while settled := replay(write_log, source, target, 500).settled:
        replayed += settled
    return replayed


@click.command("verify")
@click.option("--channel", "channels", type=SNOWFLAKE, multiple=True, help="Only these channels (repeatable).")
@click.option("--repair", "repair_differences", is_flag=True,
              help="Copy DUAL_PRIMARY's state over every difference found.")
def verify_command(channels: tuple[int, ...], repair_differences: bool) -> None:
    """Compare DUAL_PRIMARY and DUAL_SECONDARY per channel and bucket (counts and content digests)."""
    with Stores() as stores:
        differences = verify(stores.source, stores.target, _channel_ids(channels))
        left_pending = (repair(stores.source, stores.target, stores.write_log, differences)
                        if repair_differences else 0)
    for difference in differences:
        click.echo(difference.describe())
    if not differences:
        click.echo("no differences")
    elif repair_differences:
        click.echo(f"repaired {len(differences)} buckets")
        if left_pending:
            click.echo(f"{left_pending} messages are being written to; `flask messages replay` copies them "
                       "once those writes end", err=True)
    else:
        raise click.ClickException(f"{len(differences)} buckets differ (rerun with --repair to fix)")


@click.command("replay")
def replay_command() -> None:
    """Copy to DUAL_SECONDARY every dual write that has not reached it yet."""
    with Stores() as stores:
        click.echo(f"replayed {_replay(stores.source, stores.target, stores.write_log)} pending dual writes "
                   f"from {stores.source_name} to {stores.target_name}")
        if in_flight := stores.write_log.pending_count():
            click.echo(f"{in_flight} still pending: writes of them are in flight; they settle as those end",
                       err=True)


COMMANDS = (migrate_command, verify_command, replay_command)
