"""Reading a channel's history: order, cursors, limits, bucket boundaries, empty buckets and sparse channels."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from app.ids import bucket_bounds, bucket_of, snowflake_from_ms
from tests.contract.builders import BASE, BASE_BUCKET, BUCKET, CHANNEL, MS, OTHER_CHANNEL, ids_of, post

#: The most statements one page may cost, whatever the channel's age, size or sparseness.
MAX_STATEMENTS_PER_PAGE = 3


def test_lists_newest_first_whatever_the_write_order(store):
    ids = [BASE + i * MS for i in range(20)]
    random.Random(3).shuffle(ids)
    newest_first = post(store, *ids)
    post(store, BASE + 5 * MS + 1, channel_id=OTHER_CHANNEL)
    assert ids_of(store.list_messages(CHANNEL)) == newest_first


def test_an_unknown_channel_has_no_history(store):
    post(store, BASE)
    assert store.list_messages(OTHER_CHANNEL) == []


def test_limit_keeps_the_newest(store):
    newest_first = post(store, *(BASE + i * MS for i in range(10)))
    assert ids_of(store.list_messages(CHANNEL, limit=3)) == newest_first[:3]
    assert ids_of(store.list_messages(CHANNEL, limit=100)) == newest_first


@pytest.mark.parametrize("bounds", [{"limit": 0}, {"before": 0}, {"before": -5}, {"after": BASE, "before": BASE + 1},
                                    {"after": BASE + 9 * MS, "before": BASE + 2 * MS}])
def test_empty_windows_and_zero_limits_return_nothing(store, bounds):
    post(store, *(BASE + i * MS for i in range(10)))
    assert store.list_messages(CHANNEL, **bounds) == []


def test_before_is_exclusive_and_may_be_any_snowflake(store):
    ids = [BASE + i * 10 * MS for i in range(6)]
    post(store, *ids)
    assert ids_of(store.list_messages(CHANNEL, before=ids[3], limit=2)) == [ids[2], ids[1]]
    assert ids_of(store.list_messages(CHANNEL, before=ids[3] + 1, limit=2)) == [ids[3], ids[2]]
    assert ids_of(store.list_messages(CHANNEL, before=ids[3] - 5 * MS, limit=2)) == [ids[2], ids[1]]
    assert ids_of(store.list_messages(CHANNEL, before=ids[0])) == []


def test_after_returns_the_messages_right_after_the_cursor_newest_first(store):
    ids = [BASE + i * 10 * MS for i in range(10)]
    post(store, *ids)
    assert ids_of(store.list_messages(CHANNEL, after=ids[2], limit=3)) == [ids[5], ids[4], ids[3]]
    assert ids_of(store.list_messages(CHANNEL, after=ids[2] + 5 * MS, limit=3)) == [ids[5], ids[4], ids[3]]
    assert ids_of(store.list_messages(CHANNEL, after=ids[2] - 1, limit=2)) == [ids[3], ids[2]]
    assert store.list_messages(CHANNEL, after=ids[9]) == []


def test_after_zero_starts_at_the_oldest_message(store):
    newest_first = post(store, *(BASE + i * BUCKET for i in range(5)))
    assert ids_of(store.list_messages(CHANNEL, after=0, limit=2)) == newest_first[-2:]


def test_after_and_before_together_bound_both_sides(store):
    ids = [BASE + i * MS for i in range(10)]
    post(store, *ids)
    assert ids_of(store.list_messages(CHANNEL, after=ids[2], before=ids[7])) == [ids[6], ids[5], ids[4], ids[3]]
    assert ids_of(store.list_messages(CHANNEL, after=ids[2], before=ids[7], limit=2)) == [ids[4], ids[3]]
    assert ids_of(store.list_messages(CHANNEL, after=ids[2], before=ids[4])) == [ids[3]]


class TestBucketBoundary:
    """Messages on both sides of the boundary between BASE_BUCKET and the next bucket."""

    last_of_base, first_of_next = bucket_bounds(BASE_BUCKET)[1], bucket_bounds(BASE_BUCKET + 1)[0]
    ids = [last_of_base - 2, last_of_base - 1, last_of_base, first_of_next, first_of_next + 1, first_of_next + 2]

    @pytest.fixture(autouse=True)
    def history(self, store):
        assert bucket_of(self.last_of_base) == BASE_BUCKET and bucket_of(self.first_of_next) == BASE_BUCKET + 1
        post(store, *self.ids)

    def test_a_page_spans_the_boundary(self, store):
        ids = self.ids
        assert ids_of(store.list_messages(CHANNEL, limit=4)) == [ids[5], ids[4], ids[3], ids[2]]
        assert ids_of(store.list_messages(CHANNEL, after=ids[1], limit=3)) == [ids[4], ids[3], ids[2]]

    def test_before_the_first_id_of_a_bucket_starts_in_the_previous_bucket(self, store):
        assert ids_of(store.list_messages(CHANNEL, before=self.first_of_next, limit=2)) == [
            self.last_of_base, self.last_of_base - 1]

    def test_after_the_last_id_of_a_bucket_starts_in_the_next_bucket(self, store):
        assert ids_of(store.list_messages(CHANNEL, after=self.last_of_base, limit=2)) == [
            self.first_of_next + 1, self.first_of_next]

    def test_a_window_around_the_boundary(self, store):
        assert ids_of(store.list_messages(CHANNEL, after=self.last_of_base - 1, before=self.first_of_next + 1)) == [
            self.first_of_next, self.last_of_base]


def test_paging_backwards_and_forwards_reads_every_message_once(store):
    # Uneven history: busy buckets, single messages, and runs of empty buckets between them.
    layout = {0: 9, 1: 1, 4: 6, 5: 0, 9: 2, 10: 13, 30: 1}
    ids = [BASE + bucket * BUCKET + i * 1000 * MS for bucket, count in layout.items() for i in range(count)]
    newest_first = post(store, *ids)

    backwards, before = [], None
    while page := store.list_messages(CHANNEL, before=before, limit=4):
        backwards.extend(ids_of(page))
        before = page[-1].id
    assert backwards == newest_first

    forwards, after = [], 0
    while page := store.list_messages(CHANNEL, after=after, limit=4):
        assert ids_of(page) == sorted(ids_of(page), reverse=True)
        forwards[:0] = ids_of(page)
        after = page[0].id
    assert forwards == newest_first


def test_buckets_emptied_by_deletes_are_skipped(store):
    kept_old, deleted, kept_new = BASE, BASE + 2 * BUCKET, BASE + 4 * BUCKET
    post(store, kept_old, deleted, deleted + MS, kept_new)
    store.delete_messages(CHANNEL, [deleted, deleted + MS])
    assert ids_of(store.list_messages(CHANNEL)) == [kept_new, kept_old]
    assert ids_of(store.list_messages(CHANNEL, before=deleted + 2 * MS, limit=1)) == [kept_old]
    assert ids_of(store.list_messages(CHANNEL, after=deleted - MS, limit=1)) == [kept_new]


def quarterly_ids(start: datetime, years: int) -> list[int]:
    return [snowflake_from_ms(int((start + timedelta(days=91 * quarter)).timestamp() * 1000)) + 7
            for quarter in range(4 * years)]


class TestSparseChannel:
    """One message a quarter over five years: most of the channel's buckets are empty."""

    ids = quarterly_ids(datetime(2020, 1, 1, tzinfo=timezone.utc), years=5)
    newest_first = sorted(ids, reverse=True)

    @pytest.fixture(autouse=True)
    def history(self, store):
        assert len({bucket_of(i) for i in self.ids}) == 20
        post(store, *self.ids)

    def read(self, store, sql_statements, **bounds):
        if sql_statements is None:
            return ids_of(store.list_messages(CHANNEL, **bounds))
        with sql_statements.counting() as counter:
            page = ids_of(store.list_messages(CHANNEL, **bounds))
        assert counter.count <= MAX_STATEMENTS_PER_PAGE, f"{counter.count} statements for one page"
        return page

    def test_the_latest_page_holds_the_whole_history(self, store, sql_statements):
        assert self.read(store, sql_statements, limit=50) == self.newest_first

    def test_a_page_before_a_cursor_years_back(self, store, sql_statements):
        cursor = self.ids[6] + 1
        assert self.read(store, sql_statements, before=cursor, limit=50) == self.newest_first[13:]
        assert self.read(store, sql_statements, before=cursor, limit=3) == self.newest_first[13:16]

    def test_a_page_after_a_cursor_years_back(self, store, sql_statements):
        assert self.read(store, sql_statements, after=self.ids[2], limit=4) == self.newest_first[13:17]
        assert self.read(store, sql_statements, after=0, limit=50) == self.newest_first

    def test_a_cursor_in_an_empty_stretch(self, store, sql_statements):
        between = (self.ids[10] + self.ids[11]) // 2
        assert self.read(store, sql_statements, before=between, limit=2) == [self.ids[10], self.ids[9]]
        assert self.read(store, sql_statements, after=between, limit=2) == [self.ids[12], self.ids[11]]


def test_a_deep_page_of_a_busy_channel_costs_what_the_latest_page_costs(store, sql_statements):
    # Busy buckets on both sides of a long quiet stretch; the deep page starts in the oldest one.
    post(store, *(BASE + bucket * BUCKET + i * MS for bucket in (0, 1, 40, 41) for i in range(60)))
    if sql_statements is None:
        assert len(store.list_messages(CHANNEL, limit=50)) == 50
        assert ids_of(store.list_messages(CHANNEL, before=BASE + 30 * MS)) == [BASE + i * MS for i in range(29, -1, -1)]
        return
    with sql_statements.counting() as latest:
        assert len(store.list_messages(CHANNEL, limit=50)) == 50
    with sql_statements.counting() as deep:
        page = store.list_messages(CHANNEL, before=BASE + 30 * MS, limit=50)
    assert ids_of(page) == [BASE + i * MS for i in range(29, -1, -1)]
    assert deep.count == latest.count <= MAX_STATEMENTS_PER_PAGE
