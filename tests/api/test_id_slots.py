"""Snowflake slots are leased per process, so ids minted by concurrent processes never collide."""
import subprocess
import sys

from app.id_slots import LeasedSnowflakes, slots_for
from app.ids import SLOT_COUNT


def _slot_of(snowflake: int) -> int:
    return (snowflake >> 12) & (SLOT_COUNT - 1)


def test_concurrent_processes_lease_distinct_slots_and_mint_unique_ids(database):
    count = 5_000
    processes = [
        subprocess.Popen([sys.executable, "-m", "tests.support.mint_ids", "--database", database.database_url,
                          str(count)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    # Every process holds its slot at the same time before any lets go.
    for process in processes:
        assert process.stdout.readline().strip() == "ready"
    results = []
    for process in processes:
        output, _ = process.communicate("go\n", timeout=60)
        assert process.returncode == 0
        results.append([int(line) for line in output.split()])

    slots = [{_slot_of(i) for i in ids} for ids in results]
    assert all(len(s) == 1 for s in slots)
    assert len({s.pop() for s in slots}) == 4
    assert len({i for ids in results for i in ids}) == 4 * count


def test_a_released_slot_is_reused(database):
    first = LeasedSnowflakes(slots_for(database.database_url))
    slot = first.slot
    second = LeasedSnowflakes(slots_for(database.database_url))
    assert second.slot != slot
    first.release()
    third = LeasedSnowflakes(slots_for(database.database_url))
    assert third.slot == slot
    second.release()
    third.release()
