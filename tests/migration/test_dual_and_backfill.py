"""Moving messages from the SQL store to ScyllaDB while writes continue: dual writes, replay after a secondary
outage, a resumable backfill, and verification. The SQL store is the source (SQLite); the target is the Scylla
store on the CQL test node, through the real driver."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from app.extensions import create_db_engine
from app.ids import SnowflakeGenerator, bucket_of, snowflake_from_ms
from app.messages.base import Message, StoreUnavailable
from app.messages.dual import DualMessageStore, WriteLog, replay
from app.messages.migration import Backfill, Checkpoint, repair, verify
from app.messages.sql import SqlMessageStore
from tests.scylla import stores as scylla_stores
from tests.support.databases import migrated_database

CHANNEL = 42
DAY_MS = 24 * 3600 * 1000


@pytest.fixture
def source(tmp_path):
    with migrated_database("sqlite", tmp_path) as settings:
        engine = create_db_engine(settings)
        yield SqlMessageStore(engine)
        engine.dispose()


@pytest.fixture
def target():
    with scylla_stores.test_node_store() as store:
        yield store
    scylla_stores.shared_test_nodes().clear_faults()


@pytest.fixture
def write_log(source):
    return WriteLog(source.engine, stale_writer_seconds=60)


@pytest.fixture
def dual(source, target, write_log):
    return DualMessageStore(source, target, write_log)


def history(count: int, *, days_apart: float, start_days_ago: float, channel_id: int = CHANNEL) -> list[Message]:
    """Back-dated messages spread over many 10-day buckets, oldest first."""
    now_ms = int(datetime.now(timezone.utc).timestamp() * 1000)
    return [Message(id=snowflake_from_ms(now_ms - int((start_days_ago - i * days_apart) * DAY_MS)) + i,
                    channel_id=channel_id, author_id=1000 + i % 3, content=f"message {i}")
            for i in range(count)]


def seed(store, messages: list[Message]) -> None:
    for message in messages:
        store.create_message(message)


def all_messages(store, channel_id: int = CHANNEL) -> dict[int, Message]:
    return {m.id: m for bucket in store.channel_buckets(channel_id)
            for m in store.messages_in_bucket(channel_id, bucket)}


def test_dual_writes_reach_both_stores(dual, source, target):
    ids = SnowflakeGenerator(3)
    first, second = (Message(id=ids.next_id(), channel_id=CHANNEL, author_id=1, content=t) for t in ("a", "b"))
    dual.create_message(first)
    dual.create_message(second)
    dual.update_message(CHANNEL, first.id, {"content": "a, edited", "edited_at": datetime.now(timezone.utc)})
    dual.add_reaction(CHANNEL, first.id, "🔥", 7)
    dual.pin_message(CHANNEL, first.id, datetime.now(timezone.utc))
    dual.delete_messages(CHANNEL, [second.id])

    assert target.get_message(CHANNEL, first.id).content == "a, edited"
    assert target.get_message(CHANNEL, first.id).pinned
    assert target.get_message(CHANNEL, second.id) is None
    assert target.reaction_users(CHANNEL, first.id, "🔥", after=None, limit=10) == [7]
    assert dual.get_message(CHANNEL, first.id) == source.get_message(CHANNEL, first.id)
    assert verify(source, target, [CHANNEL]) == []


def test_writes_missed_by_the_secondary_are_replayed(dual, source, target, write_log):
    ids = SnowflakeGenerator(4)
    kept = Message(id=ids.next_id(), channel_id=CHANNEL, author_id=1, content="before the outage")
    dual.create_message(kept)
    nodes = scylla_stores.shared_test_nodes()
    for node in nodes.nodes:
        node.inject("unavailable", applies_to="writes")
    during = Message(id=ids.next_id(), channel_id=CHANNEL, author_id=1, content="during the outage")
    dual.create_message(during)
    dual.update_message(CHANNEL, kept.id, {"content": "edited during the outage"})
    assert source.get_message(CHANNEL, during.id) is not None, "the primary took the write"
    assert len(write_log.ready(100)) == 2

    nodes.clear_faults()
    assert dual.replay_pending() == 2
    assert write_log.pending_count() == 0
    assert target.get_message(CHANNEL, during.id).content == "during the outage"
    assert target.get_message(CHANNEL, kept.id).content == "edited during the outage"
    assert verify(source, target, [CHANNEL]) == []


def test_a_lone_write_that_reached_the_secondary_settles(write_log):
    versions = write_log.begin(CHANNEL, [5])
    assert write_log.ready(10) == [], "a write in flight is not replayed under its feet"
    assert write_log.end(CHANNEL, versions, reached_secondary=True) == []
    assert write_log.pending_count() == 0


@pytest.mark.parametrize("order", ["first ends first", "second ends first"])
def test_overlapping_writes_of_one_message_leave_it_pending(write_log, order):
    """Two writes in flight at once may reach the secondary in either order: neither may settle the entry."""
    first = write_log.begin(CHANNEL, [5])
    second = write_log.begin(CHANNEL, [5])
    ends = [first, second] if order == "first ends first" else [second, first]
    for versions in ends:
        assert write_log.end(CHANNEL, versions, reached_secondary=True) == [5]
    assert write_log.ready(10) == [(CHANNEL, 5)]


def test_a_write_after_one_that_missed_the_secondary_does_not_settle_it(write_log):
    write_log.end(CHANNEL, write_log.begin(CHANNEL, [5]), reached_secondary=False)
    assert write_log.end(CHANNEL, write_log.begin(CHANNEL, [5]), reached_secondary=True) == [5]
    assert write_log.ready(10) == [(CHANNEL, 5)]


def test_a_write_counted_in_flight_past_the_stale_time_belongs_to_a_dead_process(source):
    now = [datetime.now(timezone.utc)]
    write_log = WriteLog(source.engine, stale_writer_seconds=30, clock=lambda: now[0])
    write_log.begin(CHANNEL, [5])
    assert write_log.ready(10) == [] and write_log.claim(CHANNEL, 5) is None
    now[0] += timedelta(seconds=29)
    assert write_log.ready(10) == [] and write_log.claim(CHANNEL, 5) is None
    now[0] += timedelta(seconds=2)
    assert write_log.ready(10) == [(CHANNEL, 5)]
    version = write_log.claim(CHANNEL, 5)
    assert version is not None
    assert write_log.release(CHANNEL, 5, version, copied=True)
    assert write_log.pending_count() == 0


def test_a_failed_primary_write_leaves_the_entry_pending_and_no_writer_in_flight(dual, source, target, write_log):
    message = Message(id=SnowflakeGenerator(6).next_id(), channel_id=CHANNEL, author_id=1, content="never stored")

    def refuse(message):
        raise StoreUnavailable("primary down")

    dual.primary = type("DownStore", (), {"create_message": staticmethod(refuse)})()
    with pytest.raises(StoreUnavailable):
        dual.create_message(message)
    dual.primary = source
    assert write_log.ready(10) == [(CHANNEL, message.id)]
    assert dual.replay_pending() == 1
    assert target.get_message(CHANNEL, message.id) is None


class WriteDuringRead:
    """The real source store; right after the next ``get_message``, ``write`` runs (once)."""

    def __init__(self, source, write):
        self._source = source
        self._write = write

    def get_message(self, channel_id, message_id):
        message = self._source.get_message(channel_id, message_id)
        write, self._write = self._write, lambda: None
        write()
        return message

    def __getattr__(self, name):
        return getattr(self._source, name)


def test_a_replay_overtaken_by_a_delete_does_not_resurrect_the_message(dual, source, target, write_log):
    """The replay reads the message, a user deletes it (both stores, acknowledged), then the replay's stale copy
    lands on the secondary. The entry must stay pending, and the next replay must delete the copy."""
    message = Message(id=SnowflakeGenerator(7).next_id(), channel_id=CHANNEL, author_id=1, content="doomed")
    source.create_message(message)
    write_log.mark(CHANNEL, [message.id])

    racing = replay(write_log, WriteDuringRead(source, lambda: dual.delete_messages(CHANNEL, [message.id])), target,
                    10)
    assert racing.overtaken == 1
    assert target.get_message(CHANNEL, message.id) is not None, "the stale copy landed after the delete"
    assert write_log.ready(10) == [(CHANNEL, message.id)]

    assert replay(write_log, source, target, 10).settled == 1
    assert target.get_message(CHANNEL, message.id) is None
    assert write_log.pending_count() == 0


def test_backfill_copies_history_with_reactions_and_pins(source, target, write_log, tmp_path):
    messages = history(60, days_apart=7, start_days_ago=430)
    seed(source, messages)
    source.add_reaction(CHANNEL, messages[3].id, "👍", 11)
    source.add_reaction(CHANNEL, messages[3].id, "👍", 12)
    source.pin_message(CHANNEL, messages[5].id, datetime(2026, 1, 2, tzinfo=timezone.utc))
    assert len(source.channel_buckets(CHANNEL)) > 30

    checkpoint = Checkpoint(tmp_path / "progress.sqlite3")
    result = Backfill(source, target, write_log, checkpoint, page_size=7).run([CHANNEL])

    assert result.copied == 60
    assert all_messages(target) == all_messages(source)
    assert target.reaction_users(CHANNEL, messages[3].id, "👍", after=None, limit=10) == [11, 12]
    assert [p.message_id for p in target.list_pins(CHANNEL, before=None, limit=10)] == [messages[5].id]
    assert verify(source, target, [CHANNEL]) == []


class Killed(Exception):
    pass


def test_a_killed_backfill_resumes_without_copying_twice_or_skipping(source, target, write_log, tmp_path):
    messages = history(50, days_apart=3, start_days_ago=200)
    seed(source, messages)
    progress = tmp_path / "progress.sqlite3"
    pages = []

    def die_after_three_pages(copied: int) -> None:
        pages.append(copied)
        if len(pages) == 3:
            raise Killed()

    with pytest.raises(Killed):
        Backfill(source, target, write_log, Checkpoint(progress), page_size=4,
                 on_progress=die_after_three_pages).run([CHANNEL])
    copied_before = sum(pages)
    assert 0 < copied_before < 50
    assert len(all_messages(target)) == copied_before

    resumed = Backfill(source, target, write_log, Checkpoint(progress), page_size=4)
    assert resumed.remaining([CHANNEL]) == 50 - copied_before
    result = resumed.run([CHANNEL])
    assert result.copied == 50 - copied_before, "the resumed run copies exactly what the killed one did not"
    assert all_messages(target) == all_messages(source)
    assert Backfill(source, target, write_log, Checkpoint(progress)).run([CHANNEL]).copied == 0


class RacingSource:
    """The real source store; right after the backfill reads a page, a user's write lands through dual writes."""

    def __init__(self, source, on_page):
        self._source = source
        self._on_page = on_page

    def list_messages(self, *args, **kwargs):
        page = self._source.list_messages(*args, **kwargs)
        if page:
            self._on_page(page)
            self._on_page = lambda page: None
        return page

    def __getattr__(self, name):
        return getattr(self._source, name)


def test_an_edit_during_the_backfill_survives_it(source, target, write_log, dual, tmp_path):
    messages = history(10, days_apart=1, start_days_ago=5)
    seed(source, messages)
    edited = messages[-1]

    def edit(page):
        assert edited.id in {m.id for m in page}
        dual.update_message(CHANNEL, edited.id, {"content": "edited while copying",
                                                 "edited_at": datetime.now(timezone.utc)})

    result = Backfill(RacingSource(source, edit), target, write_log, Checkpoint(tmp_path / "p.sqlite3")).run([CHANNEL])
    assert result.resynced >= 1
    assert target.get_message(CHANNEL, edited.id).content == "edited while copying"
    assert verify(source, target, [CHANNEL]) == []


def test_a_delete_during_the_backfill_is_not_resurrected(source, target, write_log, dual, tmp_path):
    messages = history(10, days_apart=1, start_days_ago=5)
    seed(source, messages)
    deleted = messages[-2]
    Backfill(RacingSource(source, lambda page: dual.delete_messages(CHANNEL, [deleted.id])), target, write_log,
             Checkpoint(tmp_path / "p.sqlite3")).run([CHANNEL])
    assert source.get_message(CHANNEL, deleted.id) is None
    assert target.get_message(CHANNEL, deleted.id) is None
    assert len(all_messages(target)) == 9


class KilledAfterWriting:
    """The real write log; the backfill dies on its second look at the log, after writing its first page and
    before checking it."""

    def __init__(self, write_log):
        self._write_log = write_log
        self._looks = 0

    def entries_between(self, *args):
        self._looks += 1
        if self._looks == 2:
            raise Killed()
        return self._write_log.entries_between(*args)

    def __getattr__(self, name):
        return getattr(self._write_log, name)


def test_a_backfill_killed_before_checking_its_page_has_the_check_done_on_resume(
        source, target, write_log, dual, tmp_path):
    messages = history(10, days_apart=0.1, start_days_ago=1)
    seed(source, messages)
    deleted = messages[4]
    progress = tmp_path / "p.sqlite3"
    with pytest.raises(Killed):
        Backfill(RacingSource(source, lambda page: dual.delete_messages(CHANNEL, [deleted.id])), target,
                 KilledAfterWriting(write_log), Checkpoint(progress)).run([CHANNEL])
    assert target.get_message(CHANNEL, deleted.id) is not None, "the killed run copied the message it had read"

    resumed = Backfill(source, target, write_log, Checkpoint(progress)).run([CHANNEL])
    assert resumed.resynced >= 1
    assert target.get_message(CHANNEL, deleted.id) is None
    assert verify(source, target, [CHANNEL]) == []


def test_verify_reports_and_repairs_every_kind_of_difference(source, target):
    messages = history(12, days_apart=11, start_days_ago=140)
    seed(source, messages)
    seed(target, messages)
    target.delete_messages(CHANNEL, [messages[0].id])
    target.update_message(CHANNEL, messages[1].id, {"content": "tampered"})
    stray = Message(id=messages[2].id + 1, channel_id=CHANNEL, author_id=1, content="only in the target")
    target.create_message(stray)
    source.add_reaction(CHANNEL, messages[4].id, "🔥", 3)

    differences = verify(source, target, [CHANNEL])
    found = {(kind, i) for d in differences for kind in ("missing", "extra", "changed") for i in getattr(d, kind)}
    assert found == {("missing", messages[0].id), ("changed", messages[1].id), ("extra", stray.id),
                     ("changed", messages[4].id)}
    assert {d.bucket for d in differences} == {bucket_of(m.id) for m in (messages[0], messages[1], stray, messages[4])}

    assert repair(source, target, WriteLog(source.engine, stale_writer_seconds=60), differences) == 0
    assert verify(source, target, [CHANNEL]) == []


def test_backfill_rate_limit_paces_the_copy(source, target, write_log, tmp_path):
    seed(source, history(20, days_apart=0.5, start_days_ago=12))
    started = datetime.now(timezone.utc)
    result = Backfill(source, target, write_log, Checkpoint(tmp_path / "p.sqlite3"), rate=20, page_size=5).run(
        [CHANNEL])
    assert result.copied == 20
    assert datetime.now(timezone.utc) - started >= timedelta(seconds=0.7)


def test_a_bucket_larger_than_a_page_is_copied_whole_across_a_resume(source, target, write_log, tmp_path):
    messages = history(23, days_apart=0.05, start_days_ago=2)
    seed(source, messages)
    assert len(source.channel_buckets(CHANNEL)) == 1
    progress = tmp_path / "progress.sqlite3"
    pages = []

    def die_after_two_pages(copied: int) -> None:
        pages.append(copied)
        if len(pages) == 2:
            raise Killed()

    with pytest.raises(Killed):
        Backfill(source, target, write_log, Checkpoint(progress), page_size=5,
                 on_progress=die_after_two_pages).run([CHANNEL])
    assert len(all_messages(target)) == 10
    assert Backfill(source, target, write_log, Checkpoint(progress), page_size=5).run([CHANNEL]).copied == 13
    assert all_messages(target) == all_messages(source)


def test_a_dry_run_counts_everything_and_writes_nothing(source, target, write_log, tmp_path):
    seed(source, history(17, days_apart=2, start_days_ago=40))
    checkpoint = Checkpoint(tmp_path / "p.sqlite3")
    result = Backfill(source, target, write_log, checkpoint, page_size=4, dry_run=True).run([CHANNEL])
    assert result.copied == 17
    assert all_messages(target) == {}
    assert checkpoint.copied() == 0 and not checkpoint.channel_done(CHANNEL)


def test_verify_compares_the_guild_of_each_message(source, target):
    """A message copied without its guild (as on ScyllaDB before CQL 0005) is missing from the author index a
    ban's purge reads: verify reports it as changed."""
    (message,) = history(1, days_apart=1, start_days_ago=2)
    source.create_message(message.replace(guild_id=77))
    target.create_message(message)
    (difference,) = verify(source, target, [CHANNEL])
    assert difference.changed == [message.id]
