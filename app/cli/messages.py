"""``flask messages``: import and export message history as JSON Lines, one Discord message object a line.

The objects are the API's own (app.services.wire). Import keeps the given ids, so back-dated history lands in
its buckets, and writes through the message store, which is idempotent by id. Export walks the channel's
buckets oldest first and holds one bucket at a time, so a big channel streams.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path
from typing import IO

import click
import orjson
from sqlalchemy import select

from app.blobs.base import BlobNotFound
from app.cli import SNOWFLAKE, CommandGroup, resources
from app.domain import UserSnapshot
from app.ids import snowflake_time
from app.messages.base import Message, StoreUnavailable
from app.services.attachments import attachment_records, blob_key
from app.services.channel_writes import ChannelWrites
from app.services.dispatch import Dispatch
from app.services.messages import TEXT_CHANNEL_TYPES, MessageBundle
from app.services.wire import WireFormError, message_from_json, message_json, timestamp
from models import Channel, User

messages_cli = CommandGroup("messages", help="Import and export message history (JSON Lines).")
#: Carriage return and ANSI "erase line": the next text replaces the progress line on a terminal.
CLEAR_LINE = "\r\x1b[K"
#: Lines checked together: one store read per channel finds which of them are already stored.
IMPORT_BATCH_LINES = 500


class BadLine(Exception):
    """A line that cannot be imported; the text says why."""


@dataclass
class ImportCounts:
    imported: int = 0
    skipped: int = 0
    failed: int = 0

    def summary(self) -> str:
        return (f"imported {self.imported}, skipped {self.skipped} (already present and identical), "
                f"failed {self.failed}")


@dataclass(frozen=True)
class CheckedLine:
    """A line that can be imported: its message, its pin time if given, and the same message if already stored."""

    message: Message
    pinned_at: datetime | None
    stored: Message | None


class MessageImporter:
    """Checks lines against the metadata and the store, and writes them through the store.

    Lines are checked a batch at a time, so that finding which messages are already stored costs one store read
    per channel and batch. Each channel and author is looked up once. A session's transaction is closed before
    any store call, as in the services: on SQLite the process has one connection, which the SQL store needs too.
    """

    def __init__(self, res, now: datetime, files: Path | None = None):
        self.blobs = res.blob_store
        #: A directory of attachment files as ``export --files`` writes them, copied to the blob store.
        self.files = files
        self.open_session = res.session
        self.store = res.message_store
        self.writes = ChannelWrites(res.engine, res.message_store, record_events=res.settings.events_enabled)
        # Imported history is announced as backfill: consumers index it, live sessions need not show it.
        self.dispatch = Dispatch(res.ids, backfill=True)
        self.now = now
        self._channel_problems: dict[int, str | None] = {}
        self._channel_guilds: dict[int, int | None] = {}
        self._users: dict[int, UserSnapshot | None] = {}

    def check_batch(self, batch: list[tuple[int, bytes]]) -> list[tuple[int, CheckedLine | BadLine]]:
        """Each line's outcome, by line number.

        A stored message that differs is a bad line: import never rewrites history (and a create over it would
        keep fields the line leaves at their defaults). So is a second, different line for an id in the batch.
        """
        outcomes: dict[int, CheckedLine | BadLine] = {}
        parsed: dict[int, tuple[Message, datetime | None]] = {}
        for number, line in batch:
            try:
                parsed[number] = self._parse(line)
                self._check_files(parsed[number][0])
            except BadLine as problem:
                parsed.pop(number, None)
                outcomes[number] = problem
        stored = self._stored_messages([message for message, _ in parsed.values()])
        firsts: dict[tuple[int, int], Message] = {}
        for number, (message, pinned_at) in sorted(parsed.items()):
            key = (message.channel_id, message.id)
            if key in firsts:
                # Written by the time this line is: the same again is skipped, a different one refused.
                if firsts[key] != message:
                    outcomes[number] = BadLine(f"message {message.id} appears earlier in the file with different "
                                               "fields")
                else:
                    outcomes[number] = CheckedLine(message, pinned_at, stored=firsts[key])
                continue
            # The nonce of a message sent through the API is not part of its object, so it never differs here.
            if key in stored and stored[key].replace(nonce=None) != message:
                outcomes[number] = BadLine(f"message {message.id} exists with different fields; not overwritten")
                continue
            firsts[key] = message
            outcomes[number] = CheckedLine(message, pinned_at, stored=stored.get(key))
        return sorted(outcomes.items())

    def write(self, line: CheckedLine) -> bool:
        """Store the line's message; False when it was already stored as given."""
        message = line.message
        channel_id = message.channel_id
        guild_id = self._channel_guilds.get(channel_id)
        if line.stored is None:
            # The files before the message that names them, as a create through the API stores them.
            self._copy_files(message)
            users = {u: user for u in (message.author_id, *message.mentions) if (user := self._user(u)) is not None}
            wire = message_json(message, MessageBundle(messages=[message], users=users, guild_id=guild_id))
            event = self.dispatch.message_created(wire, guild_id=guild_id, channel_id=channel_id)
            # The channel's last_message_id moves up to it, never down: history imported behind newer messages
            # leaves it where it is.
            self.writes.apply(channel_id, lambda: self.store.create_message(message), created=message.id,
                              events=lambda _: [event], check={"message": [channel_id, message.id], "exists": True})
        if message.pinned and (line.stored is None or not line.stored.pinned):
            # Idempotent (the first pin time stays), and completes an import that stopped before the pin.
            pinned_at = line.pinned_at or snowflake_time(message.id)
            event = self.dispatch.pins_updated(pinned_at, guild_id=guild_id, channel_id=channel_id)
            self.writes.apply(channel_id, lambda: self.store.pin_message(channel_id, message.id, pinned_at),
                              events=lambda _: [event], check={"pin": [channel_id, message.id], "pinned": True})
        return line.stored is None

    def _file_of(self, message: Message, record: dict) -> Path | None:
        if self.files is None:
            return None
        path = self.files / blob_key(message.channel_id, int(record["id"]))
        return path if path.is_file() else None

    def _check_files(self, message: Message) -> None:
        """Every attachment's file must be in --files or already in the blob store: an imported message never
        names a file that is not there."""
        for record in attachment_records(message):
            if self._file_of(message, record) is None and \
                    self.blobs.stat(blob_key(message.channel_id, int(record["id"]))) is None:
                raise BadLine(f"attachment {record['id']} of message {message.id}: no file in the blob store"
                              + (f" nor in {self.files}" if self.files is not None else " (give --files)"))

    def _copy_files(self, message: Message) -> None:
        for record in attachment_records(message):
            path = self._file_of(message, record)
            if path is not None:
                with path.open("rb") as source:
                    self.blobs.put(blob_key(message.channel_id, int(record["id"])), source, record["content_type"])

    def _parse(self, line: bytes) -> tuple[Message, datetime | None]:
        """The line's message and pin time, after checking its form, its time, its channel and its author."""
        try:
            body = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise BadLine(f"not JSON: {exc}") from None
        try:
            message, pinned_at = message_from_json(body)
        except WireFormError as exc:
            raise BadLine(str(exc)) from None
        if snowflake_time(message.id) > self.now:
            # Such an id would sort after every message the service sends from now on.
            raise BadLine(f"id {message.id} is in the future ({timestamp(snowflake_time(message.id))})")
        problem = self._channel_problem(message.channel_id)
        if problem:
            raise BadLine(problem)
        # A webhook's message names its sender itself, and outlives the webhook, as on Discord.
        if message.webhook_id is None and not self._user_exists(message.author_id):
            raise BadLine(f"unknown author {message.author_id}")
        # The channel's guild, for the author index (a message object does not carry it).
        return message.replace(guild_id=self._channel_guilds.get(message.channel_id)), pinned_at

    def _stored_messages(self, messages: list[Message]) -> dict[tuple[int, int], Message]:
        """The stored messages with the ids of ``messages``, by (channel id, id): one store read per channel."""
        ids_per_channel: dict[int, set[int]] = {}
        for message in messages:
            ids_per_channel.setdefault(message.channel_id, set()).add(message.id)
        return {(channel_id, message_id): message
                for channel_id, ids in ids_per_channel.items()
                for message_id, message in self.store.get_messages(channel_id, ids).items()}

    def _channel_problem(self, channel_id: int) -> str | None:
        if channel_id not in self._channel_problems:
            with self.open_session() as session:
                channel_type, self._channel_guilds[channel_id] = session.execute(
                    select(Channel.type, Channel.guild_id).where(Channel.id == channel_id)).first() or (None, None)
            if channel_type is None:
                self._channel_problems[channel_id] = f"unknown channel {channel_id}"
            elif channel_type not in TEXT_CHANNEL_TYPES:
                self._channel_problems[channel_id] = f"channel {channel_id} is not a text channel"
            else:
                self._channel_problems[channel_id] = None
        return self._channel_problems[channel_id]

    def _user_exists(self, user_id: int) -> bool:
        return self._user(user_id) is not None

    def _user(self, user_id: int) -> UserSnapshot | None:
        if user_id not in self._users:
            with self.open_session() as session:
                user = session.get(User, user_id)
                self._users[user_id] = UserSnapshot.of(user) if user is not None else None
        return self._users[user_id]


class FilePass:
    """One pass over a JSON Lines file: (line number, line) for each non-blank line, with progress and line
    reports on stderr. Progress is redrawn in place on a terminal and printed every 10% elsewhere."""

    def __init__(self, path: Path, label: str, show_progress: bool):
        self.path = path
        self.label = label
        self.show_progress = show_progress
        self.interactive = sys.stderr.isatty()
        self.total_bytes = max(os.path.getsize(path), 1)
        self.shown_percent: int | None = None

    def __iter__(self):
        done = 0
        with open(self.path, "rb") as file:
            for number, line in enumerate(file, start=1):
                done += len(line)
                self._show(min(100, done * 100 // self.total_bytes))
                if line.strip():
                    yield number, line
        if self.show_progress and self.interactive:
            click.echo(err=True)

    def report(self, number: int, problem: str) -> None:
        redraw = self.show_progress and self.interactive and self.shown_percent is not None
        # On a terminal the report takes the progress line's place, and progress is drawn again below it.
        click.echo(f"{CLEAR_LINE if redraw else ''}line {number}: {problem}", err=True)
        if redraw:
            click.echo(f"{self.label}: {self.shown_percent}%", err=True, nl=False)

    def _show(self, percent: int) -> None:
        step = 1 if self.interactive else 10
        if not self.show_progress or (self.shown_percent is not None and percent // step == self.shown_percent // step):
            return
        self.shown_percent = percent
        if self.interactive:
            click.echo(f"{CLEAR_LINE}{self.label}: {percent}%", err=True, nl=False)
        else:
            click.echo(f"{self.label}: {percent}%", err=True)


def _batches(lines: FilePass):
    iterator = iter(lines)
    while batch := list(islice(iterator, IMPORT_BATCH_LINES)):
        yield batch


@messages_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--strict", is_flag=True, help="Import nothing if any line is bad (every line is checked first).")
@click.option("--progress/--no-progress", default=None,
              help="Show progress on stderr (default: only when stderr is a terminal).")
@click.option("--files", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Attachment files as `export --files` wrote them, copied into the blob store.")
@click.pass_context
def import_command(ctx: click.Context, file: Path, strict: bool, progress: bool | None, files: Path | None) -> None:
    """Import FILE: JSON Lines of Discord message objects, keeping their ids.

    Channels and authors must exist. A message already stored unchanged is skipped, so a file can be imported
    again safely; pinned messages are pinned (at ``pinned_at`` if given, else at the message's time). Bad
    lines are reported on stderr with their numbers; the summary follows. Exits 1 if any line failed. A message
    with attachments is imported only when each file is in --files or already in the blob store.
    """
    show_progress = sys.stderr.isatty() if progress is None else progress
    importer = MessageImporter(resources(), datetime.now(timezone.utc), files)
    counts = ImportCounts()
    try:
        if strict:
            # Fingerprints of the ids seen, so that two differing lines for one id in different batches fail too.
            fingerprints: dict[tuple[int, int], int] = {}
            checking = FilePass(file, "checking", show_progress)
            for batch in _batches(checking):
                for number, outcome in importer.check_batch(batch):
                    if isinstance(outcome, CheckedLine):
                        key = (outcome.message.channel_id, outcome.message.id)
                        if fingerprints.setdefault(key, hash(outcome.message)) != hash(outcome.message):
                            outcome = BadLine(f"message {outcome.message.id} appears earlier in the file with "
                                              "different fields")
                    if isinstance(outcome, BadLine):
                        checking.report(number, str(outcome))
                        counts.failed += 1
            if counts.failed:
                click.echo(f"nothing imported (--strict): {counts.failed} bad lines", err=True)
                click.echo(counts.summary(), err=True)
                ctx.exit(1)
        importing = FilePass(file, "importing", show_progress)
        for batch in _batches(importing):
            for number, outcome in importer.check_batch(batch):
                if isinstance(outcome, BadLine):
                    importing.report(number, str(outcome))
                    counts.failed += 1
                elif importer.write(outcome):
                    counts.imported += 1
                else:
                    counts.skipped += 1
    except StoreUnavailable as exc:
        raise click.ClickException(f"message store unavailable ({exc}); {counts.summary()}; importing again "
                                   f"is safe") from None
    click.echo(counts.summary(), err=True)
    if counts.failed:
        ctx.exit(1)


def write_channel_history(out: IO[bytes], channel_id: int, files: Path | None = None) -> int:
    """Write the channel's messages oldest first, one bucket in memory at a time; return how many. With
    ``files``, each attachment's bytes go to ``files/{channel_id}/{attachment_id}``, streamed."""
    res = resources()
    store = res.message_store
    # Pins are few (a per-channel limit), so their times are held; export adds them to pinned messages.
    pin_times = {pin.message_id: pin.pinned_at
                 for pin in store.list_pins(channel_id, before=None, limit=store.count_pins(channel_id))}
    written = 0
    for bucket in reversed(store.channel_buckets(channel_id)):
        messages = store.messages_in_bucket(channel_id, bucket)
        user_ids = {m.author_id for m in messages} | {u for m in messages for u in m.mentions}
        with res.session() as session:
            users = {u.id: u for u in session.scalars(select(User).where(User.id.in_(user_ids)))} if user_ids else {}
        # Reactions are left out: a message object gives counts, not who reacted, so import could not
        # restore them.
        bundle = MessageBundle(messages=messages, users=users)
        for message in reversed(messages):
            body = message_json(message, bundle)
            if files is not None:
                _export_files(res.blob_store, message, files)
            if message.id in pin_times:
                body["pinned_at"] = timestamp(pin_times[message.id])
            out.write(orjson.dumps(body) + b"\n")
            written += 1
    return written


def _export_files(blobs, message: Message, directory: Path) -> None:
    for record in attachment_records(message):
        key = blob_key(message.channel_id, int(record["id"]))
        target = directory / key
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            chunks = blobs.read(key)
        except BlobNotFound:
            raise click.ClickException(f"attachment {record['id']} of message {message.id} has no file") from None
        with target.open("wb") as out:
            for chunk in chunks:
                out.write(chunk)


@messages_cli.command("export")
@click.option("--channel", "channel_id", type=SNOWFLAKE, required=True, help="The channel to export.")
@click.option("--out", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write to this file instead of stdout.")
@click.option("--files", type=click.Path(file_okay=False, path_type=Path),
              help="Also write every attachment's file under this directory, for `import --files`.")
def export_command(channel_id: int, out: Path | None, files: Path | None) -> None:
    """Write a channel's messages, oldest first, as JSON Lines that ``flask messages import`` reads back.

    Pinned messages carry ``pinned_at``; attachments their records (their url is a path without a signature),
    and with --files their bytes. Reactions are not exported.
    """
    with resources().session() as session:
        if session.get(Channel, channel_id) is None:
            raise click.ClickException(f"unknown channel {channel_id}")
    try:
        with click.open_file(str(out) if out else "-", "wb") as stream:
            written = write_channel_history(stream, channel_id, files)
    except StoreUnavailable as exc:
        raise click.ClickException(f"message store unavailable ({exc}); the export is incomplete") from None
    click.echo(f"exported {written} messages of channel {channel_id}", err=True)
