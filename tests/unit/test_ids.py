from __future__ import annotations

import subprocess
import sys
import threading
from datetime import datetime, timezone

import pytest

from app.ids import (
    BUCKET_SIZE_MS,
    DISCORD_EPOCH_MS,
    MAX_SNOWFLAKE,
    SLOT_COUNT,
    InvalidSnowflake,
    SnowflakeGenerator,
    bucket_bounds,
    bucket_of,
    parse_snowflake,
    snowflake_from_ms,
    snowflake_ms,
    snowflake_time,
)

NOW_MS = 1_700_000_000_123  # 2023-11-14T22:13:20.123Z
INCREMENTS_PER_MS = 1 << 12


class FakeClock:
    """A settable stand-in for time.time."""

    def __init__(self, unix_ms: int):
        self.unix_ms = unix_ms

    def __call__(self) -> float:
        # Read mid-millisecond so float rounding can never push the reading into a neighbouring millisecond.
        return (self.unix_ms + 0.5) / 1000


def worker_id(snowflake: int) -> int:
    return (snowflake & 0x3E0000) >> 17


def process_id(snowflake: int) -> int:
    return (snowflake & 0x1F000) >> 12


def increment(snowflake: int) -> int:
    return snowflake & 0xFFF


def slot_of(snowflake: int) -> int:
    return (worker_id(snowflake) << 5) | process_id(snowflake)


def assert_strictly_increasing(ids: list[int]) -> None:
    backwards = [(i, a, b) for i, (a, b) in enumerate(zip(ids, ids[1:])) if a >= b]
    assert not backwards, f"ids not strictly increasing at {backwards[:3]}"


# --- layout -------------------------------------------------------------------------------------------------


def test_layout_matches_the_contract_formulas():
    slot = (0b10110 << 5) | 0b01101
    generator = SnowflakeGenerator(slot, clock=FakeClock(NOW_MS))

    first, second = generator.next_id(), generator.next_id()

    assert (first >> 22) + DISCORD_EPOCH_MS == NOW_MS
    assert worker_id(first) == 0b10110
    assert process_id(first) == 0b01101
    assert (increment(first), increment(second)) == (0, 1)
    assert snowflake_ms(first) == NOW_MS


def test_snowflake_time_agrees_with_discord_py():
    discord_utils = pytest.importorskip("discord.utils")
    snowflake = SnowflakeGenerator(7, clock=FakeClock(NOW_MS)).next_id()

    expected = datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=timezone.utc)
    assert snowflake_time(snowflake) == expected
    assert discord_utils.snowflake_time(snowflake) == expected


def test_extraction_of_discords_documented_example():
    # developers/reference.mdx "Snowflake ID Format Structure": 175928847299117063.
    snowflake = 175928847299117063
    assert snowflake_time(snowflake) == datetime(2016, 4, 30, 11, 18, 25, 796000, tzinfo=timezone.utc)
    assert (worker_id(snowflake), process_id(snowflake), increment(snowflake)) == (1, 0, 7)


@pytest.mark.parametrize("slot", [0, 1, 31, 32, SLOT_COUNT - 1])
def test_slot_is_split_into_worker_and_process_bits(slot):
    snowflake = SnowflakeGenerator(slot, clock=FakeClock(NOW_MS)).next_id()
    assert slot_of(snowflake) == slot
    assert snowflake_ms(snowflake) == NOW_MS


@pytest.mark.parametrize("slot", [-1, SLOT_COUNT])
def test_slot_outside_ten_bits_is_rejected(slot):
    with pytest.raises(ValueError):
        SnowflakeGenerator(slot)


# --- monotonicity -------------------------------------------------------------------------------------------


def test_ids_strictly_increase_and_carry_the_clock_time():
    clock = FakeClock(NOW_MS)
    generator = SnowflakeGenerator(5, clock=clock)
    ids, minted_at = [], []
    for n in range(50_000):
        if n % 7 == 0:
            clock.unix_ms += 1
        ids.append(generator.next_id())
        minted_at.append(clock.unix_ms)

    assert_strictly_increasing(ids)
    assert [snowflake_ms(snowflake) for snowflake in ids] == minted_at


def test_increment_overflow_borrows_the_next_millisecond():
    clock = FakeClock(NOW_MS)
    generator = SnowflakeGenerator(5, clock=clock)

    ids = [generator.next_id() for _ in range(INCREMENTS_PER_MS + 10)]

    assert_strictly_increasing(ids)
    assert [increment(snowflake) for snowflake in ids[:INCREMENTS_PER_MS]] == list(range(INCREMENTS_PER_MS))
    assert {snowflake_ms(snowflake) for snowflake in ids[:INCREMENTS_PER_MS]} == {NOW_MS}
    overflowed = ids[INCREMENTS_PER_MS]
    assert (snowflake_ms(overflowed), increment(overflowed)) == (NOW_MS + 1, 0)

    # When the real clock reaches the borrowed millisecond the generator must not restart its increment.
    clock.unix_ms += 1
    later = [generator.next_id() for _ in range(10)]
    assert_strictly_increasing(ids + later)
    assert {snowflake_ms(snowflake) for snowflake in later} == {NOW_MS + 1}


def test_clock_stepping_backwards_keeps_ids_unique_and_increasing():
    clock = FakeClock(NOW_MS)
    generator = SnowflakeGenerator(5, clock=clock)
    ids = [generator.next_id()]

    clock.unix_ms = NOW_MS - 5_000
    # Enough ids to overflow the increment twice while the clock is behind.
    ids += [generator.next_id() for _ in range(2 * INCREMENTS_PER_MS + 100)]
    high_water_ms = snowflake_ms(ids[-1])
    assert high_water_ms == NOW_MS + 2

    clock.unix_ms = NOW_MS + 1  # forward again, but still behind the borrowed milliseconds
    ids.append(generator.next_id())
    assert snowflake_ms(ids[-1]) == high_water_ms

    clock.unix_ms = high_water_ms + 1  # past the high-water mark: the clock's time is used again
    ids.append(generator.next_id())
    assert snowflake_ms(ids[-1]) == high_water_ms + 1

    assert_strictly_increasing(ids)
    assert len(set(ids)) == len(ids)


def test_threads_sharing_a_generator_never_get_the_same_id():
    generator = SnowflakeGenerator(9)
    per_thread: list[list[int]] = [[] for _ in range(8)]

    def mint(into: list[int]) -> None:
        for _ in range(5_000):
            into.append(generator.next_id())

    threads = [threading.Thread(target=mint, args=(ids,)) for ids in per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    for ids in per_thread:
        assert_strictly_increasing(ids)
    assert len({snowflake for ids in per_thread for snowflake in ids}) == 8 * 5_000


def test_processes_with_distinct_slots_never_collide():
    slots = [0, 1, 32, SLOT_COUNT - 1]
    count = 20_000
    processes = [
        subprocess.Popen([sys.executable, "-m", "tests.support.mint_ids", "--slot", str(slot), str(count)],
                         stdout=subprocess.PIPE, text=True)
        for slot in slots
    ]
    results = []
    for process in processes:
        output, _ = process.communicate(timeout=60)
        assert process.returncode == 0
        results.append([int(line) for line in output.split()])

    for slot, ids in zip(slots, results):
        assert len(ids) == count
        assert_strictly_increasing(ids)
        assert {slot_of(snowflake) for snowflake in ids} == {slot}
    assert len({snowflake for ids in results for snowflake in ids}) == len(slots) * count


# --- cursors and buckets ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "moment",
    [
        pytest.param(datetime(2015, 1, 1, tzinfo=timezone.utc), id="epoch"),
        pytest.param(datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=timezone.utc), id="millisecond"),
        pytest.param(datetime(2084, 1, 1, tzinfo=timezone.utc), id="far-future"),
    ],
)
@pytest.mark.parametrize("high", [False, True], ids=["low", "high"])
def test_snowflake_from_ms_matches_discord_py_time_snowflake(moment, high):
    discord_utils = pytest.importorskip("discord.utils")
    unix_ms = int(moment.timestamp() * 1000)
    assert snowflake_from_ms(unix_ms, high=high) == discord_utils.time_snowflake(moment, high=high)


def test_snowflake_from_ms_brackets_every_id_of_that_millisecond():
    ids = [SnowflakeGenerator(slot, clock=FakeClock(NOW_MS)).next_id() for slot in (0, SLOT_COUNT - 1)]
    assert snowflake_from_ms(NOW_MS) <= min(ids)
    assert max(ids) <= snowflake_from_ms(NOW_MS, high=True)
    assert snowflake_from_ms(NOW_MS - 1, high=True) < snowflake_from_ms(NOW_MS)


def test_snowflake_from_ms_before_the_epoch_clamps_to_the_first_millisecond():
    assert snowflake_from_ms(0) == 0
    assert snowflake_from_ms(DISCORD_EPOCH_MS - 1, high=True) == (1 << 22) - 1


@pytest.mark.parametrize("bucket", [0, 1, 2, 1_000])
def test_bucket_bounds_are_the_first_and_last_snowflake_of_the_bucket(bucket):
    lowest, highest = bucket_bounds(bucket)

    assert bucket_of(lowest) == bucket
    assert bucket_of(highest) == bucket
    assert bucket_of(highest + 1) == bucket + 1
    if bucket > 0:
        assert bucket_of(lowest - 1) == bucket - 1
    assert snowflake_ms(highest) - snowflake_ms(lowest) == BUCKET_SIZE_MS - 1
    assert bucket_bounds(bucket + 1)[0] == highest + 1


def test_buckets_are_ten_days_from_the_discord_epoch():
    ten_days_in = DISCORD_EPOCH_MS + 10 * 24 * 60 * 60 * 1000
    assert bucket_of(snowflake_from_ms(ten_days_in - 1, high=True)) == 0
    assert bucket_of(snowflake_from_ms(ten_days_in)) == 1
    assert bucket_of(SnowflakeGenerator(3, clock=FakeClock(NOW_MS)).next_id()) == (
        (NOW_MS - DISCORD_EPOCH_MS) // BUCKET_SIZE_MS
    )


# --- parsing ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ("0", 0), ("175928847299117063", 175928847299117063), (str(MAX_SNOWFLAKE), MAX_SNOWFLAKE),
    ("0" * 19 + "7", 7), (42, 42), (MAX_SNOWFLAKE, MAX_SNOWFLAKE),
])
def test_parse_snowflake_reads_digit_strings_and_integers(value, expected):
    assert parse_snowflake(value) == expected


@pytest.mark.parametrize("value", [
    "", "abc", "-1", "+1", " 1", "1 ", "1e3", "0x10", "1.0", "\u0661\u0662", "\u00b2", str(MAX_SNOWFLAKE + 1),
    "0" * 21, "9" * 5000, -1, MAX_SNOWFLAKE + 1, pytest.param(10**5000, id="5001-digit-int"), True, False, 1.0,
    None, b"1", ["1"],
])
def test_parse_snowflake_refuses_anything_else_with_a_value_error(value):
    with pytest.raises(InvalidSnowflake) as raised:
        parse_snowflake(value)
    assert isinstance(raised.value, ValueError) and raised.value.value is value
