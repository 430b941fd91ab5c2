"""What a ban's purge costs as the guild's history grows, the banned user's own messages fixed; not part of CI.

    .venv/bin/python -m bench.ban_purge [--sizes 1000,100000,1000000] [--own 200] [--rounds 5] [--channels 16]
                                        [--backend sqlite|postgres]

A guild of ``--channels`` text channels gets a history of each size in turn (other members' messages spread over
the last 7 days, written straight into the SQL store's tables in bulk, the author index included), and the user
to be banned ``--own`` messages of the last hour spread over every channel. Each round bans the user with
``delete_message_seconds`` one day through ``ModerationService.ban`` (the API's path: the ban, its events, then
the purge through the author index and ``ChannelWrites``, MESSAGE_DELETE_BULK events, the read-cache versions),
timing it (wall and this process's CPU, so a neighbour's load does not inflate it), then puts the user's messages
back and unbans. The baseline, measured in the same run, is the first size; each size's median CPU per ban is
printed as a ratio to it (target: at most 1.5 at every size, i.e. flat). For contrast, the cost of finding the
same messages by reading every channel's whole history (what a purge without the index would do) is measured
once per size beside it.

Results go to bench/results/<timestamp>-ban-purge.json and are printed as Markdown.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

from sqlalchemy import delete, func, select  # noqa: E402

from app.domain import UserSnapshot  # noqa: E402
from app.extensions import Resources  # noqa: E402
from app.ids import bucket_of, snowflake_from_ms  # noqa: E402
from app.messages.base import Message  # noqa: E402
from app.messages.sql_tables import ChannelBucket, StoredMessage  # noqa: E402
from app.services.attachments import AttachmentService  # noqa: E402
from app.services.channel_writes import ChannelWrites  # noqa: E402
from app.services.dispatch import Dispatch  # noqa: E402
from app.services.moderation import MessagePurge, ModerationService  # noqa: E402
from bench.paths import RESULTS_DIR  # noqa: E402
from models import Ban, User  # noqa: E402
from tests.support.databases import migrated_database  # noqa: E402
from tests.support.factories import Factory  # noqa: E402

FLAT_TARGET = 1.5
INSERT_BATCH = 20_000
messages_table = StoredMessage.__table__
buckets_table = ChannelBucket.__table__


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def grow_history(resources: Resources, guild_id: int, channels: list[int], authors: list[int], count: int,
                 rng: random.Random) -> None:
    """Add ``count`` messages by ``authors`` over the last 7 days, in bulk (the store's rows, index and buckets)."""
    now = _ms(datetime.now(timezone.utc))
    start = now - 7 * 24 * 3600 * 1000
    seen_buckets = set()
    with resources.engine.begin() as connection:
        for offset in range(0, count, INSERT_BATCH):
            rows = []
            for _ in range(min(INSERT_BATCH, count - offset)):
                message_id = snowflake_from_ms(rng.randrange(start, now - 3600 * 1000)) + rng.randrange(1 << 22)
                channel_id = rng.choice(channels)
                rows.append({"channel_id": channel_id, "bucket": bucket_of(message_id), "message_id": message_id,
                             "author_id": rng.choice(authors), "content": "history", "type": 0, "flags": 0,
                             "tts": False, "mention_everyone": False, "pinned": False, "guild_id": guild_id})
                seen_buckets.add((channel_id, bucket_of(message_id)))
            connection.execute(messages_table.insert().prefix_with("OR IGNORE", dialect="sqlite"), rows)
        existing = set(connection.execute(select(buckets_table.c.channel_id, buckets_table.c.bucket)))
        fresh = [{"channel_id": c, "bucket": b} for c, b in seen_buckets - existing]
        if fresh:
            connection.execute(buckets_table.insert(), fresh)
    if resources.engine.dialect.name == "postgresql":
        # What autovacuum does soon after a bulk load: without statistics the planner takes a 1M-row table for a
        # small one and scans it.
        with resources.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("ANALYZE messages")


def post_own(resources: Resources, guild_id: int, channels: list[int], user_id: int, count: int) -> None:
    """The banned user's messages of the last hour, through the store as the service writes them."""
    now = _ms(datetime.now(timezone.utc))
    for i in range(count):
        message_id = snowflake_from_ms(now - 3_000_000 + i * 1000) + 7
        resources.message_store.create_message(Message(id=message_id, channel_id=channels[i % len(channels)],
                                                        author_id=user_id, content="spam", guild_id=guild_id))


def moderation(resources: Resources) -> ModerationService:
    writes = ChannelWrites(resources.engine, resources.message_store, record_events=resources.settings.events_enabled)
    session = resources.session()
    purge = MessagePurge(session, resources.message_store, writes, Dispatch(resources.ids),
                         AttachmentService(resources.blob_store, resources.ids))
    return ModerationService(session, resources.ids, events=resources.session_events(), purge=purge)


def ban_once(resources: Resources, owner: UserSnapshot, guild_id: int, user_id: int) -> tuple[float, float]:
    service = moderation(resources)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        service.ban(owner, guild_id, user_id, delete_message_seconds=86400)
        return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000
    finally:
        service.session.close()


def unban(resources: Resources, guild_id: int, user_id: int) -> None:
    with resources.engine.begin() as connection:
        connection.execute(delete(Ban.__table__).where(Ban.guild_id == guild_id, Ban.user_id == user_id))


def scan_once(resources: Resources, channels: list[int], user_id: int) -> tuple[float, int]:
    """CPU ms to find the user's messages by reading every channel's whole history, and how many it found."""
    store, found = resources.message_store, 0
    cpu = time.process_time()
    for channel_id in channels:
        before = None
        while True:
            page = store.list_messages(channel_id, before=before, limit=100)
            found += sum(1 for m in page if m.author_id == user_id)
            if len(page) < 100:
                break
            before = page[-1].id
    return (time.process_time() - cpu) * 1000, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--own", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--backend", default="sqlite", choices=("sqlite", "postgres"))
    parser.add_argument("--no-scan", action="store_true", help="skip the full-scan contrast")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = random.Random(16)
    results = []
    with tempfile.TemporaryDirectory() as directory, migrated_database(args.backend, Path(directory)) as settings:
        resources = Resources(settings)
        try:
            make = Factory(resources)
            owner = make.actor("purge-owner")
            author_actors = [make.actor(f"purge-author-{n}") for n in range(8)]
            authors = [actor.id for actor in author_actors]
            banned = make.actor("purge-banned")
            guild_id, general = make.guild(owner)
            channels = [general] + [make.channel(guild_id, f"c{n}") for n in range(args.channels - 1)]
            for actor in author_actors:
                make.member(guild_id, actor)
            with resources.session() as session:
                owner_snapshot = UserSnapshot.of(session.get(User, owner.id))
            # One untimed ban first: statements compiled and caches warm, so the first size is not penalised.
            post_own(resources, guild_id, channels, banned.id, args.own)
            make.member(guild_id, banned)
            ban_once(resources, owner_snapshot, guild_id, banned.id)
            unban(resources, guild_id, banned.id)
            grown = 0
            for size in sizes:
                started = time.perf_counter()
                grow_history(resources, guild_id, channels, authors, size - grown, rng)
                grown = size
                with resources.engine.connect() as connection:
                    stored = connection.execute(select(func.count()).select_from(messages_table)).scalar_one()
                seeded_s = time.perf_counter() - started
                walls, cpus = [], []
                for _ in range(args.rounds):
                    post_own(resources, guild_id, channels, banned.id, args.own)
                    make.member(guild_id, banned)
                    wall, cpu = ban_once(resources, owner_snapshot, guild_id, banned.id)
                    walls.append(wall)
                    cpus.append(cpu)
                    left = resources.message_store.messages_by_author(guild_id, banned.id, after=None, before=None,
                                                                      limit=10)
                    assert left == [], "the purge left messages of the banned user"
                    unban(resources, guild_id, banned.id)
                row = {"history": size, "stored_rows": stored, "own": args.own, "seed_seconds": round(seeded_s, 1),
                       "ban_wall_ms_median": round(statistics.median(walls), 1),
                       "ban_cpu_ms_median": round(statistics.median(cpus), 1),
                       "ban_cpu_ms_per_message": round(statistics.median(cpus) / args.own, 3)}
                if not args.no_scan:
                    post_own(resources, guild_id, channels, banned.id, args.own)
                    scan_cpu, found = scan_once(resources, channels, banned.id)
                    assert found == args.own
                    row["full_scan_cpu_ms"] = round(scan_cpu, 1)
                    with resources.engine.begin() as connection:
                        connection.execute(delete(messages_table).where(messages_table.c.author_id == banned.id))
                results.append(row)
                print(f"history {size:>9,}: ban+purge of {args.own} messages {row['ban_cpu_ms_median']} ms CPU "
                      f"({row['ban_wall_ms_median']} ms wall)"
                      + (f"; a full scan would cost {row['full_scan_cpu_ms']} ms CPU" if "full_scan_cpu_ms" in row
                         else ""), flush=True)
        finally:
            resources.close()
    base = results[0]["ban_cpu_ms_median"]
    for row in results:
        row["ratio_to_smallest"] = round(row["ban_cpu_ms_median"] / base, 2)
    verdict = "PASS" if all(row["ratio_to_smallest"] <= FLAT_TARGET for row in results) else "FAIL"
    lines = ["| history | ban + purge CPU ms (median) | wall ms | CPU ms per purged message | ratio to smallest |"
             " full scan CPU ms |", "|---|---|---|---|---|---|"]
    for row in results:
        lines.append(f"| {row['history']:,} | {row['ban_cpu_ms_median']} | {row['ban_wall_ms_median']} | "
                     f"{row['ban_cpu_ms_per_message']} | {row['ratio_to_smallest']} | "
                     f"{row.get('full_scan_cpu_ms', '-')} |")
    lines.append(f"\nflat purge (each size <= {FLAT_TARGET} x the smallest): {verdict}")
    print("\n".join(lines))
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-ban-purge.json"
    out.write_text(json.dumps({"backend": args.backend, "own": args.own, "rounds": args.rounds,
                               "channels": args.channels, "results": results, "verdict": verdict}, indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
