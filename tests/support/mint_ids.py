"""Mint snowflakes in a separate process and print them, one per line (used by the uniqueness tests).

    python -m tests.support.mint_ids --slot N COUNT        a bare generator on a fixed slot
    python -m tests.support.mint_ids --database URL COUNT  a slot leased the way the service leases it
"""
from __future__ import annotations

import argparse
import sys

from app.id_slots import LeasedSnowflakes, slots_for
from app.ids import SnowflakeGenerator


def main() -> None:
    parser = argparse.ArgumentParser()
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--slot", type=int)
    source.add_argument("--database")
    parser.add_argument("count", type=int)
    args = parser.parse_args()
    if args.slot is not None:
        generator = SnowflakeGenerator(args.slot)
        ids = [generator.next_id() for _ in range(args.count)]
    else:
        leased = LeasedSnowflakes(slots_for(args.database))
        ids = [leased.next_id() for _ in range(args.count)]
        # Stay alive holding the slot until told to go, so concurrent minters really overlap.
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        sys.stdin.readline()
        leased.release()
    sys.stdout.write("\n".join(map(str, ids)) + "\n")


if __name__ == "__main__":
    main()
