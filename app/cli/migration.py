"""``flask messages migrate | verify | replay``: move messages from the SQL store to ScyllaDB while serving.

Runbook (README, "Moving to ScyllaDB"): enable dual writes, backfill with ``migrate``, ``verify``, switch reads,
stop dual writes. Each command is safe to stop and rerun.
"""
from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy import select
from tqdm import tqdm

from app.cli import SNOWFLAKE, resources
from app.messages.dual import WriteLog, replay
from app.messages.migration import Backfill, Checkpoint, repair, verify
from app.messages.sql import SqlMessageStore
from models import Channel

DEFAULT_CHECKPOINT = Path("var") / "migrate-to-scylla.sqlite3"


def _stores():
    """The SQL store (the source) and the ScyllaDB store (the target) as the settings describe them."""
    from app.messages.scylla import ScyllaMessageStore

    res = resources()
    if not res.settings.scylla_hosts:
        raise click.ClickException("SCYLLA_HOSTS is not set: there is no ScyllaDB cluster to migrate to")
    return SqlMessageStore(res.engine), ScyllaMessageStore(res.settings), WriteLog(res.engine)


def _channel_ids(chosen: tuple[int, ...]) -> list[int]:
    if chosen:
        return list(chosen)
    with resources().session() as session:
        return list(session.scalars(select(Channel.id).order_by(Channel.id)))


@click.command("migrate")
@click.option("--to", "destination", type=click.Choice(["scylla"]), required=True, help="The store to copy into.")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_CHECKPOINT,
              show_default=True, help="SQLite file recording progress; rerun with it to resume.")
@click.option("--rate", type=click.FloatRange(min=1), default=None, help="At most this many messages per second.")
@click.option("--concurrency", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Channels copied at once.")
@click.option("--channel", "channels", type=SNOWFLAKE, multiple=True, help="Only these channels (repeatable).")
@click.option("--dry-run", is_flag=True, help="Read and count what would be copied; write nothing.")
def migrate_command(destination: str, checkpoint: Path, rate: float | None, concurrency: int,
                    channels: tuple[int, ...], dry_run: bool) -> None:
    """Copy every message (with reactions and pins) from the SQL store into ScyllaDB, resumably."""
    source, target, write_log = _stores()
    progress_file = checkpoint if not dry_run else checkpoint.with_suffix(".dry-run.sqlite3")
    state = Checkpoint(progress_file)
    channel_ids = _channel_ids(channels)
    try:
        replayed = _replay(source, target, write_log)
        backfill = Backfill(source, target, write_log, state, concurrency=concurrency, rate=rate, dry_run=dry_run)
        with tqdm(total=backfill.remaining(channel_ids), unit="msg", file=click.get_text_stream("stderr"),
                  disable=None, desc="dry run" if dry_run else "copying") as bar:
            backfill.on_progress = bar.update
            result = backfill.run(channel_ids)
        replayed += _replay(source, target, write_log)
    finally:
        state.close()
        if dry_run:
            progress_file.unlink(missing_ok=True)
        target.close()
    verb = "would copy" if dry_run else "copied"
    click.echo(f"{verb} {result.copied} messages from {result.channels} channels in {result.seconds:.1f}s "
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
              help="Copy the SQL store's state over every difference found.")
def verify_command(channels: tuple[int, ...], repair_differences: bool) -> None:
    """Compare the SQL store and ScyllaDB per channel and bucket (counts and content digests)."""
    source, target, write_log = _stores()
    try:
        differences = verify(source, target, _channel_ids(channels))
        left_pending = repair(source, target, write_log, differences) if repair_differences else 0
    finally:
        target.close()
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
    """Copy to ScyllaDB every dual write that has not reached it yet."""
    source, target, write_log = _stores()
    try:
        click.echo(f"replayed {_replay(source, target, write_log)} pending dual writes")
        if in_flight := write_log.pending_count():
            click.echo(f"{in_flight} still pending: writes of them are in flight; they settle as those end",
                       err=True)
    finally:
        target.close()


COMMANDS = (migrate_command, verify_command, replay_command)
