"""The event bus contract (app/events/base.py), run against every backend (tests/events/conftest.py)."""
from __future__ import annotations

import time

import gevent
import pytest

from app.events.base import EventBusUnavailable, PositionExpired, partition_of
from tests.events.builders import event, guilds_per_partition, ids
from tests.events.conftest import PARTITIONS


def read_all(bus, partition, after=None):
    return bus.read(partition, after, limit=1000)


def test_each_partition_keeps_its_guilds_events_in_publication_order(bus):
    guilds = guilds_per_partition(PARTITIONS) + guilds_per_partition(PARTITIONS, start=900_000)
    published = [event(guild, seq=n) for n in range(5) for guild in guilds]
    bus.publish(published[:13])
    bus.publish(published[13:])
    for partition in range(PARTITIONS):
        got = read_all(bus, partition)
        expected = [e for e in published if partition_of(e.guild_id, e.channel_id, PARTITIONS) == partition]
        assert ids(got) == ids(expected)
        assert {e.partition for e in got} == {partition}
        assert got[0].data == expected[0].data and got[0].type == "MESSAGE_CREATE"


def test_guildless_events_are_partitioned_by_channel(bus):
    direct = event(None, channel_id=77)
    bus.publish([direct])
    assert ids(read_all(bus, partition_of(None, 77, PARTITIONS))) == [direct.id]


def test_a_batch_published_twice_is_read_twice_with_the_same_ids(bus):
    guild = guilds_per_partition(PARTITIONS)[1]
    batch = [event(guild) for _ in range(3)]
    bus.publish(batch)
    bus.publish(batch)
    got = read_all(bus, 1)
    assert ids(got) == ids(batch) * 2
    assert len({e.position for e in got}) == 6
    assert list(dict.fromkeys(ids(got))) == ids(batch)


def test_reads_replay_from_a_position_in_pages(bus):
    guild = guilds_per_partition(PARTITIONS)[2]
    published = [event(guild) for _ in range(10)]
    bus.publish(published)
    everything = read_all(bus, 2)
    assert ids(read_all(bus, 2, after=everything[3].position)) == ids(published[4:])
    pages, after = [], None
    while page := bus.read(2, after, limit=3):
        pages.append(ids(page))
        after = page[-1].position
    assert pages == [ids(published[0:3]), ids(published[3:6]), ids(published[6:9]), ids(published[9:])]
    assert bus.latest_position(2) == everything[-1].position
    assert bus.oldest_position(2) == everything[0].position
    assert bus.read(2, bus.latest_position(2), limit=10) == []


def test_position_order_sorts_positions_in_publication_order(bus):
    guild = guilds_per_partition(PARTITIONS)[2]
    bus.publish([event(guild) for _ in range(12)])
    positions = [e.position for e in read_all(bus, 2)]
    assert sorted(reversed(positions), key=bus.position_order) == positions
    with pytest.raises(ValueError):
        bus.position_order("not-a-position")


def test_latest_positions_name_every_partition(bus):
    guild = guilds_per_partition(PARTITIONS)[1]
    bus.publish([event(guild) for _ in range(3)])
    assert bus.latest_positions() == {p: bus.latest_position(p) for p in range(PARTITIONS)}
    assert bus.latest_positions()[1] == read_all(bus, 1)[-1].position


def test_positions_of_an_empty_partition(bus):
    assert bus.oldest_position(3) is None
    assert bus.latest_position(3) is None
    assert bus.read(3, None, limit=10) == []


def test_a_malformed_position_is_refused(bus):
    with pytest.raises(ValueError):
        bus.read(0, "not-a-position", limit=1)


def test_a_blocking_read_is_woken_by_a_publish_from_elsewhere(bus, bus_factory):
    guild = guilds_per_partition(PARTITIONS)[0]
    publisher = bus_factory.another(bus)
    first = event(guild)
    publisher.publish([first])
    latest = bus.latest_position(0)
    second = event(guild)
    started = time.monotonic()
    reader = gevent.spawn(bus.read, 0, latest, 10, 5.0)
    # The publish comes once the reader has had time to start waiting; whenever it lands, the read returns it.
    gevent.spawn_later(0.1, publisher.publish, [second])
    got = reader.get(timeout=5)
    assert ids(got) == [second.id]
    # Well before PostgreSQL's safety-net poll (1 s): the notification woke it.
    assert time.monotonic() - started < 0.8
    publisher.close()


def test_a_blocking_read_without_events_returns_nothing_after_its_wait(bus):
    started = time.monotonic()
    assert bus.read(1, None, limit=10, block_seconds=0.2) == []
    assert 0.2 <= time.monotonic() - started < 2.0


def test_trim_by_count_expires_older_positions(bus_factory):
    guild = guilds_per_partition(PARTITIONS)[3]
    with bus_factory.fresh(max_events=3) as bus:
        published = [event(guild) for _ in range(5)]
        bus.publish(published)
        positions = [e.position for e in read_all(bus, 3)]
        assert bus.trim() == 2
        assert bus.trim() == 0
        assert ids(read_all(bus, 3)) == ids(published[2:])
        assert bus.oldest_position(3) == positions[2]
        assert bus.latest_position(3) == positions[4]
        with pytest.raises(PositionExpired) as expired:
            bus.read(3, positions[0], limit=10)
        assert expired.value.oldest == positions[2] and expired.value.partition == 3
        # After the newest trimmed event nothing is missing: that reader resumes.
        assert ids(bus.read(3, positions[1], limit=10)) == ids(published[2:])


def test_trim_by_age_drops_old_events(bus_factory):
    guild = guilds_per_partition(PARTITIONS)[0]
    with bus_factory.fresh(max_age_seconds=1) as bus:
        old = event(guild)
        bus.publish([old])
        old_position = read_all(bus, 0)[0].position
        deadline = time.monotonic() + 5
        while (dropped := bus.trim()) == 0:
            assert time.monotonic() < deadline, "an event older than the retention was never trimmed"
            time.sleep(0.05)
        assert dropped == 1
        fresh = event(guild)
        bus.publish([fresh])
        assert bus.trim() == 0
        assert ids(read_all(bus, 0)) == [fresh.id]
        assert ids(bus.read(0, old_position, limit=10)) == [fresh.id]


def test_a_consumer_group_delivers_each_event_to_one_consumer_in_partition_order(bus):
    guilds = guilds_per_partition(PARTITIONS)
    published = [event(guild) for _ in range(3) for guild in guilds]
    bus.publish(published)
    bus.ensure_group("indexer")
    bus.ensure_group("indexer")
    first = bus.read_group("indexer", "one", count=5)
    second = bus.read_group("indexer", "two", count=100)
    assert len(first) == 5
    assert sorted(ids(first + second)) == sorted(ids(published))
    for partition in range(PARTITIONS):
        expected = [e.id for e in published if partition_of(e.guild_id, None, PARTITIONS) == partition]
        assert [e.id for e in first + second if e.partition == partition] == expected
    bus.ack("indexer", first + second)
    assert bus.read_group("indexer", "one", count=100) == []
    assert bus.group_lag("indexer") == 0


def test_groups_are_independent_and_start_at_the_oldest_retained_event(bus):
    guild = guilds_per_partition(PARTITIONS)[1]
    published = [event(guild) for _ in range(3)]
    bus.publish(published)
    bus.ensure_group("search")
    bus.ensure_group("audit")
    assert ids(bus.read_group("search", "s", count=10)) == ids(published)
    assert ids(bus.read_group("audit", "a", count=10)) == ids(published)
    assert bus.groups() == ["audit", "search"]


def test_unacknowledged_events_are_redelivered_by_claim_stale(bus):
    guild = guilds_per_partition(PARTITIONS)[2]
    published = [event(guild) for _ in range(4)]
    bus.publish(published)
    bus.ensure_group("indexer")
    delivered = bus.read_group("indexer", "crashed", count=10)
    bus.ack("indexer", delivered[:1])
    assert bus.claim_stale("indexer", "rescuer", min_idle_seconds=60, count=10) == []
    claimed = bus.claim_stale("indexer", "rescuer", min_idle_seconds=0, count=2)
    assert ids(claimed) == ids(published[1:3])
    assert [e.position for e in claimed] == [e.position for e in delivered[1:3]]
    bus.ack("indexer", claimed)
    rest = bus.claim_stale("indexer", "rescuer", min_idle_seconds=0, count=10)
    assert ids(rest) == ids(published[3:])
    bus.ack("indexer", rest)
    assert bus.claim_stale("indexer", "rescuer", min_idle_seconds=0, count=10) == []


def test_group_lag_counts_what_the_group_was_not_yet_given(bus):
    guilds = guilds_per_partition(PARTITIONS)
    bus.ensure_group("indexer")
    assert bus.group_lag("indexer") == 0
    bus.publish([event(guilds[0]), event(guilds[1]), event(guilds[1]), event(guilds[3]), event(guilds[3])])
    assert bus.group_lag("indexer") == 5
    delivered = bus.read_group("indexer", "one", count=2)
    assert bus.group_lag("indexer") == 3
    bus.ack("indexer", delivered)
    assert bus.group_lag("indexer") == 3


def test_reading_a_missing_group_is_an_error(bus):
    with pytest.raises(ValueError):
        bus.read_group("nobody", "one", count=1)


def test_a_blocking_group_read_is_woken_by_a_publish(bus, bus_factory):
    guild = guilds_per_partition(PARTITIONS)[3]
    bus.ensure_group("indexer")
    publisher = bus_factory.another(bus)
    awaited = event(guild)
    started = time.monotonic()
    reader = gevent.spawn(bus.read_group, "indexer", "one", 10, 5.0)
    gevent.spawn_later(0.1, publisher.publish, [awaited])
    assert ids(reader.get(timeout=5)) == [awaited.id]
    assert time.monotonic() - started < 0.8
    publisher.close()


def test_dispatch_is_json_ready_with_ids_as_strings(bus):
    guild = guilds_per_partition(PARTITIONS)[0]
    published = event(guild, content="hi")
    bus.publish([published])
    [got] = read_all(bus, 0)
    assert got.dispatch() == {
        "id": str(published.id), "t": "MESSAGE_CREATE", "d": published.data, "guild_id": str(guild),
        "channel_id": str(guild + 1), "partition": 0, "position": got.position, "backfill": False,
    }


def test_ping_answers(bus):
    bus.ping()


def test_an_unreachable_bus_raises_unavailable(unreachable_bus):
    with pytest.raises(EventBusUnavailable):
        unreachable_bus.ping()
    with pytest.raises(EventBusUnavailable):
        unreachable_bus.publish([event(guilds_per_partition(PARTITIONS)[0])])
    with pytest.raises(EventBusUnavailable):
        unreachable_bus.read(0, None, limit=1)
