"""The event stream's settings, the partitioning function, and redis-py's cooperation with gevent."""
from __future__ import annotations

import time

import gevent
import pytest
from gevent import monkey

from app.events import build_bus
from app.events.base import Event, event_from_bytes, event_to_bytes, partition_of
from app.events.redis import RedisEventBus
from app.events.sql import SqlEventBus
from config import Settings, SettingsError, load_settings, retention_of
from tests.support.redis import REDIS_URL, delete_prefixed, require_redis, unique_prefix


def test_event_settings_default_to_the_embedded_bus():
    settings = load_settings({})
    assert (settings.event_bus, settings.event_partitions, settings.event_retention, settings.event_relay,
            settings.event_redis_prefix, settings.redis_url) == (
        "sql", 16, "24h", "worker", "chatstore:events", "redis://127.0.0.1:6379/0")


def test_event_settings_are_read_from_the_environment():
    settings = load_settings({"EVENT_BUS": "redis", "EVENT_PARTITIONS": "64", "EVENT_RETENTION": "1000000",
                              "EVENT_RELAY": "process", "EVENT_REDIS_PREFIX": "prod:events",
                              "REDIS_URL": "redis://cache:6380/2"})
    assert (settings.event_bus, settings.event_partitions, settings.event_retention, settings.event_relay,
            settings.event_redis_prefix, settings.redis_url) == (
        "redis", 64, "1000000", "process", "prod:events", "redis://cache:6380/2")
    # REDIS_URL still names the rate limits' storage too.
    assert settings.rate_limit_storage_url == "redis://cache:6380/2"


@pytest.mark.parametrize(("raw", "expected"), [
    ("24h", (86400, None)), ("90m", (5400, None)), ("7d", (604800, None)), ("3600s", (3600, None)),
    ("1000000", (None, 1_000_000)),
])
def test_retention_is_an_age_or_a_count(raw, expected):
    assert retention_of(raw) == expected


@pytest.mark.parametrize(("variable", "raw"), [
    ("EVENT_BUS", "kafka"), ("EVENT_PARTITIONS", "0"), ("EVENT_RETENTION", "h"), ("EVENT_RETENTION", "0"),
    ("EVENT_RETENTION", "1w"), ("EVENT_RELAY", "thread"), ("EVENT_REDIS_PREFIX", "a{b}"),
])
def test_bad_event_settings_are_named(variable, raw):
    with pytest.raises(SettingsError) as raised:
        load_settings({variable: raw})
    assert any(problem.startswith(f"{variable}=") for problem in raised.value.problems)


def test_build_bus_picks_the_backend_from_the_settings(tmp_path):
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    sql_bus = build_bus(Settings(event_partitions=8, event_retention="500"), engine)
    assert isinstance(sql_bus, SqlEventBus) and sql_bus.partitions == 8 and sql_bus.max_events == 500
    redis_bus = build_bus(Settings(event_bus="redis", event_retention="2h"), engine)
    assert isinstance(redis_bus, RedisEventBus) and redis_bus.max_age_seconds == 7200
    assert redis_bus.stream(3) == "chatstore:events:{3}"
    redis_bus.close()
    engine.dispose()


def test_a_guilds_events_share_a_partition_and_guildless_ones_go_by_channel():
    assert partition_of(41771983423143937, 1, 16) == partition_of(41771983423143937, 2, 16)
    assert partition_of(None, 5, 16) == partition_of(5, None, 16)
    assert {partition_of(guild, None, 16) for guild in range(1000, 1200)} == set(range(16))
    with pytest.raises(ValueError):
        partition_of(None, None, 16)


def test_an_event_round_trips_through_its_stored_form():
    original = Event(id=7, type="MESSAGE_DELETE", guild_id=None, channel_id=9, data={"id": "3"}, backfill=True)
    assert event_from_bytes(event_to_bytes(original), partition=2, position="5") == Event(
        id=7, type="MESSAGE_DELETE", guild_id=None, channel_id=9, data={"id": "3"}, backfill=True, partition=2,
        position="5")


def test_a_blocking_redis_read_leaves_the_hub_free():
    require_redis()
    assert monkey.is_module_patched("socket")
    prefix = unique_prefix()
    bus = RedisEventBus.from_url(REDIS_URL, 1, prefix=prefix, max_age_seconds=60)
    try:
        started = time.monotonic()
        reader = gevent.spawn(bus.read, 0, None, 10, 0.5)
        ticks = 0
        while not reader.ready():
            ticks += 1
            gevent.sleep(0.01)
        assert reader.get() == []
        # The XREAD blocked in Redis for the whole half second while this greenlet kept running.
        assert time.monotonic() - started >= 0.5
        assert ticks >= 25
    finally:
        bus.close()
        delete_prefixed(REDIS_URL, prefix)
