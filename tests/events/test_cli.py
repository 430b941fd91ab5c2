"""``flask events tail`` prints what was published, as JSON lines; ``flask events relay`` runs until SIGTERM."""
from __future__ import annotations

import json
import os
import signal
import time
import urllib.request

import click
import gevent
import pytest

from app import create_app
from app.events.base import partition_of
from app.events.outbox import append
from tests.events.builders import event, guilds_per_partition, ids
from tests.events.conftest import PARTITIONS, empty_event_tables
from tests.support.databases import migrated_database
from tests.support.server import free_port


@pytest.fixture(scope="module")
def cli_app(tmp_path_factory):
    with migrated_database("sqlite", tmp_path_factory.mktemp("events-cli")) as settings:
        application = create_app(settings.replace(event_partitions=PARTITIONS, event_relay="process"))
        yield application
        application.extensions["chatstore"].close()


@pytest.fixture
def resources(cli_app):
    resources = cli_app.extensions["chatstore"]
    yield resources
    empty_event_tables(resources.engine)


def tail(cli_app, *args: str) -> list[dict]:
    result = cli_app.test_cli_runner().invoke(args=["events", "tail", *args])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_tail_prints_every_partitions_events_as_dispatch_lines(cli_app, resources):
    guilds = guilds_per_partition(PARTITIONS)
    published = [event(guild, content=f"hello {n}") for n, guild in enumerate(guilds * 2)]
    resources.event_bus.publish(published)
    lines = tail(cli_app)
    assert sorted(int(line["id"]) for line in lines) == sorted(ids(published))
    by_id = {line["id"]: line for line in lines}
    first = published[0]
    assert by_id[str(first.id)] == {**resources.event_bus.read(0, None, 1)[0].dispatch()}
    assert by_id[str(first.id)]["d"]["content"] == "hello 0"


def test_tail_of_a_guild_from_a_position(cli_app, resources):
    guild, other = guilds_per_partition(PARTITIONS)[1], guilds_per_partition(PARTITIONS, start=500_000)[1]
    assert partition_of(other, None, PARTITIONS) == partition_of(guild, None, PARTITIONS)
    published = [event(guild), event(other), event(guild), event(guild)]
    resources.event_bus.publish(published)
    assert [int(line["id"]) for line in tail(cli_app, "--guild", str(guild))] == [
        published[0].id, published[2].id, published[3].id]
    first_position = resources.event_bus.read(1, None, 1)[0].position
    assert [int(line["id"]) for line in tail(cli_app, "--guild", str(guild), "--from", first_position)] == [
        published[2].id, published[3].id]
    assert [int(line["id"]) for line in tail(cli_app, "--partition", "1", "--from", first_position)] == ids(
        published[1:])


def test_tail_refuses_a_position_without_a_partition(cli_app, resources):
    result = cli_app.test_cli_runner().invoke(args=["events", "tail", "--from", "3"])
    assert result.exit_code == 1
    assert "--from needs --partition or --guild" in result.output


def test_tail_follows_new_events_until_interrupted(cli_app, resources, monkeypatch):
    echoed: list[str] = []
    echo = click.echo
    monkeypatch.setattr(click, "echo", lambda message=None, **kwargs: (echoed.append(message), echo(message, **kwargs)))
    guild = guilds_per_partition(PARTITIONS)[2]
    follower = gevent.spawn(cli_app.test_cli_runner().invoke, args=["events", "tail", "--partition", "2", "--follow"])
    later = event(guild)
    gevent.spawn_later(0.1, resources.event_bus.publish, [later])
    deadline = time.monotonic() + 5
    while not echoed:
        assert time.monotonic() < deadline, "the followed tail never printed the new event"
        gevent.sleep(0.01)
    assert not follower.ready(), "a followed tail ended by itself"
    follower.kill(KeyboardInterrupt)  # what Ctrl-C does
    assert [int(json.loads(line)["id"]) for line in follower.value.stdout.splitlines()] == [later.id]


def test_the_relay_command_relays_until_sigterm(cli_app, resources):
    guild = guilds_per_partition(PARTITIONS)[3]
    written = event(guild)
    with resources.engine.begin() as connection:
        append(connection, [written])
    relay = gevent.spawn(cli_app.test_cli_runner().invoke, args=["events", "relay"])
    deadline = time.monotonic() + 5
    while not resources.event_bus.read(3, None, 1):
        assert time.monotonic() < deadline, "the relay command never relayed the outbox"
        gevent.sleep(0.01)
    # The event has been relayed, so the command's signal handlers are in place.
    os.kill(os.getpid(), signal.SIGTERM)
    result = relay.get(timeout=5)
    assert result.exit_code == 0, result.output
    assert "event relay stopped" in result.output
    assert ids(resources.event_bus.read(3, None, 10)) == [written.id]


def test_the_relay_command_serves_its_metrics_when_asked(cli_app, resources):
    """With EVENT_RELAY=process the relay's gauges live in its own process, which the web workers' /metrics
    cannot report: the command serves them itself (the Kubernetes relay Deployment scrapes it)."""
    port = free_port()
    with resources.engine.begin() as connection:
        append(connection, [event(guilds_per_partition(PARTITIONS)[1])])
    relay = gevent.spawn(cli_app.test_cli_runner().invoke, args=["events", "relay", "--metrics-port", str(port)])
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                body = response.read().decode()
            if "chatstore_events_published_total" in body and resources.event_bus.read(1, None, 1):
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the relay never served its metrics"
        gevent.sleep(0.05)
    assert "chatstore_event_outbox_depth" in body
    os.kill(os.getpid(), signal.SIGTERM)
    assert relay.get(timeout=5).exit_code == 0
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)
