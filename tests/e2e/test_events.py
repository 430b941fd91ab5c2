"""End to end: real gunicorn with two workers, concurrent clients writing to the same channels, and a consumer in
this process reading the event bus, on a healthy broker and through its faults.

Every write a client sends is recorded with its answer. The stream must then hold exactly one event (by id) for
every write answered 2xx, none for the others and none that nobody wrote, each client's writes in its order within
each channel. Writes are matched to events by a key both carry: the unique content of a create or an edit, the
message id of a delete, the message, emoji and user of a reaction.
"""
from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import quote

import gevent
import gevent.event
import pytest
from sqlalchemy import func, select

from app.events import build_bus
from app.events.base import Event, EventBus, EventBusUnavailable, partition_of
from app.extensions import Resources
from config import Settings
from models.events import event_outbox
from tests.support.databases import migrated_database
from tests.support.factories import ALL, Actor, Factory
from tests.support.http import JsonClient
from tests.support.redis import REDIS_URL, delete_prefixed, require_redis, throwaway_redis, unique_prefix
from tests.support.server import RunningServer, children_of, free_port, gunicorn_server, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

PARTITIONS = 4
EMOJIS = ("👍", "🎉", "🔥", "🚀")
#: How long the consumer may take to receive every acknowledged write's event once the load is over.
DELIVERY_SECONDS = 20


# -- the deployment: a seeded database, the server's environment, the consumer's bus ----------------------------

@dataclass
class Deployment:
    settings: Settings  # as the server sees them: the consumer builds its bus from them
    environment: dict[str, str]
    resources: Resources
    guild_id: int
    channel_ids: list[int]
    writers: list[Actor]

    def bus(self) -> EventBus:
        return build_bus(self.settings, self.resources.engine)

    def outbox_depth(self) -> int:
        with self.resources.engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(event_outbox)).scalar_one()


@contextmanager
def deployment(tmp_path, database: str, *, writers: int, **events: str) -> Iterator[Deployment]:
    """A migrated ``database`` with a guild of three channels and ``writers`` bots in it; ``events`` are the
    event settings (EVENT_BUS, REDIS_URL, EVENT_REDIS_PREFIX) the server runs with."""
    with migrated_database(database, tmp_path) as base:
        environment = {"DATABASE_URL": base.database_url, "WEB_WORKERS": "2", "RATE_LIMIT_ENABLED": "false",
                       "EVENT_PARTITIONS": str(PARTITIONS), **events}
        settings = base.replace(event_bus=events.get("EVENT_BUS", "sql"), event_partitions=PARTITIONS,
                                redis_url=events.get("REDIS_URL", base.redis_url),
                                event_redis_prefix=events.get("EVENT_REDIS_PREFIX", base.event_redis_prefix))
        resources = Resources(settings)
        try:
            make = Factory(resources)
            owner = make.actor("events-owner")
            guild_id, general = make.guild(owner, everyone=int(ALL))
            channel_ids = [general, make.channel(guild_id, "second"), make.channel(guild_id, "third")]
            bots = [make.actor(f"writer-{number}") for number in range(writers)]
            for bot in bots:
                make.member(guild_id, bot)
            yield Deployment(settings, environment, resources, guild_id, channel_ids, bots)
        finally:
            resources.close()


# -- the load: clients writing to the same channels, every write recorded with its answer -----------------------

@dataclass
class Write:
    """One request of a client, with the key its event carries and the answer it got."""

    client: int
    seq: int  # the client's n-th write: its order
    channel_id: int
    key: tuple
    message: str | None  # the create content of the message an edit, reaction or delete acts on
    status: int = 0
    retry_after: str | None = None
    answered_at: float = 0.0

    @property
    def acknowledged(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class Message:
    id: str
    channel_id: int
    content: str
    emojis_used: set[str] = field(default_factory=set)
    emojis_present: set[str] = field(default_factory=set)


class Client:
    """One bot sending writes one after another, each on a new connection (so they spread over the workers)."""

    def __init__(self, number: int, server: RunningServer, bot: Actor, channel_ids: list[int], writes: list[Write]):
        self.api = JsonClient(server.url, bot.token, timeout=30)
        self.number = number
        self.bot = bot
        self.channel_ids = channel_ids
        self.writes = writes  # shared by all clients, in answer order
        self.random = random.Random(number)
        self.live: list[Message] = []
        self.seq = 0

    def request(self, write: Write, method: str, path: str, body: dict | None = None) -> dict | None:
        status, headers, answer = self.api.exchange(method, path, body)
        write.status, write.retry_after = status, headers.get("Retry-After")
        write.answered_at = time.monotonic()
        self.writes.append(write)
        return answer

    def write(self, channel_id: int, key: tuple, message: Message | None) -> Write:
        self.seq += 1
        return Write(self.number, self.seq, channel_id, key, message.content if message else None)

    def step(self) -> None:
        """One write, chosen at random among those the client's messages allow."""
        reactable = [m for m in self.live if len(m.emojis_used) < len(EMOJIS)]
        reacted = [m for m in self.live if m.emojis_present]
        choices = [(self.create, 4)]
        if self.live:
            choices += [(self.edit, 2), (self.delete, 1)]
        if reactable:
            choices.append((self.react, 2))
        if reacted:
            choices.append((self.unreact, 1))
        action = self.random.choices([c for c, _ in choices], [w for _, w in choices])[0]
        action()

    def create(self) -> None:
        channel_id = self.random.choice(self.channel_ids)
        content = f"client {self.number} write {self.seq + 1}"
        write = self.write(channel_id, ("create", content), None)
        body = self.request(write, "POST", f"/channels/{channel_id}/messages", {"content": content})
        if write.acknowledged:
            self.live.append(Message(body["id"], channel_id, content))

    def edit(self) -> None:
        message = self.random.choice(self.live)
        content = f"client {self.number} write {self.seq + 1} (edit)"
        write = self.write(message.channel_id, ("edit", content), message)
        self.request(write, "PATCH", f"/channels/{message.channel_id}/messages/{message.id}", {"content": content})

    def react(self) -> None:
        message = self.random.choice([m for m in self.live if len(m.emojis_used) < len(EMOJIS)])
        emoji = self.random.choice(sorted(set(EMOJIS) - message.emojis_used))
        # Each emoji once per message, so that every reaction write has its own key.
        message.emojis_used.add(emoji)
        write = self.write(message.channel_id, ("react", message.id, emoji, str(self.bot.id)), message)
        self.request(write, "PUT", f"/channels/{message.channel_id}/messages/{message.id}/reactions/"
                                   f"{quote(emoji)}/@me")
        if write.acknowledged:
            message.emojis_present.add(emoji)

    def unreact(self) -> None:
        message = self.random.choice([m for m in self.live if m.emojis_present])
        emoji = self.random.choice(sorted(message.emojis_present))
        message.emojis_present.discard(emoji)
        write = self.write(message.channel_id, ("unreact", message.id, emoji, str(self.bot.id)), message)
        self.request(write, "DELETE", f"/channels/{message.channel_id}/messages/{message.id}/reactions/"
                                      f"{quote(emoji)}/@me")

    def delete(self) -> None:
        message = self.random.choice(self.live)
        self.live.remove(message)
        write = self.write(message.channel_id, ("delete", message.id), message)
        self.request(write, "DELETE", f"/channels/{message.channel_id}/messages/{message.id}")

    def run(self, writes: int, until: float, stop: gevent.event.Event | None) -> None:
        for _ in range(writes):
            if time.monotonic() >= until or (stop is not None and stop.is_set()):
                return
            self.step()


def start_load(server: RunningServer, deployment: Deployment, writes: list[Write], *, per_client: int,
               seconds: float = 60, stop: gevent.event.Event | None = None) -> list[gevent.Greenlet]:
    """Every writer bot writes ``per_client`` times (or until ``seconds`` have passed, or ``stop`` is set, each
    finishing the write it is making) in its own greenlet."""
    until = time.monotonic() + seconds
    return [gevent.spawn(Client(number, server, bot, deployment.channel_ids, writes).run, per_client, until, stop)
            for number, bot in enumerate(deployment.writers)]


# -- the consumer: reading the bus while the load runs, then checking what arrived ------------------------------

def key_of(event: Event) -> tuple:
    """The key of the write an event reports (the event's own id when it reports no write of the load)."""
    data = event.data
    if event.type in ("MESSAGE_CREATE", "MESSAGE_UPDATE"):
        return ("create" if event.type == "MESSAGE_CREATE" else "edit", data["content"])
    if event.type == "MESSAGE_DELETE":
        return ("delete", data["id"])
    if event.type in ("MESSAGE_REACTION_ADD", "MESSAGE_REACTION_REMOVE"):
        kind = "react" if event.type == "MESSAGE_REACTION_ADD" else "unreact"
        return (kind, data["message_id"], data["emoji"]["name"], data["user_id"])
    return (event.type, event.id)


class Consumer:
    """Reads the guild's partition from its start with blocking reads, noting when each event id first arrives."""

    def __init__(self, bus: EventBus, partition: int):
        self.bus = bus
        self.partition = partition
        self.arrived: dict[int, float] = {}
        self.keys: set[tuple] = set()
        self.unavailable = 0
        self._stopping = gevent.event.Event()
        self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        after = None
        while not self._stopping.is_set():
            try:
                events = self.bus.read(self.partition, after, 500, block_seconds=0.5)
            except EventBusUnavailable:
                self.unavailable += 1
                self._stopping.wait(0.1)  # the broker is down: try again shortly
                continue
            now = time.monotonic()
            for event in events:
                self.arrived.setdefault(event.id, now)
                self.keys.add(key_of(event))
            if events:
                after = events[-1].position

    def stop(self) -> None:
        """Stop reading (idempotent); re-raise what ended the reads, if anything did."""
        self._stopping.set()
        self._greenlet.join(timeout=5)
        self._greenlet.get(block=False)


def everything(bus: EventBus) -> list[Event]:
    """Every event of every partition, each partition's in stream order, duplicates included."""
    found = []
    for partition in range(bus.partitions):
        after = None
        while batch := bus.read(partition, after, 1000):
            found.extend(batch)
            after = batch[-1].position
    return found


@dataclass
class Delivery:
    acknowledged: int
    refused: int
    delivered: int
    duplicates: int
    longest_delay: float  # from a write's 2xx to its event's arrival
    last_ack_to_last_event: float

    def __str__(self) -> str:
        return (f"writes acknowledged {self.acknowledged}, refused {self.refused}; events delivered {self.delivered}"
                f" (+{self.duplicates} duplicates by id); longest 2xx-to-event delay {self.longest_delay:.3f}s; "
                f"last 2xx to last event {self.last_ack_to_last_event:.3f}s")


def await_delivery(deployment: Deployment, consumer: Consumer, writes: list[Write], *,
                   timeout: float = DELIVERY_SECONDS) -> None:
    """Wait until the consumer has the event of every acknowledged write and the outbox is empty (nothing more
    is on its way)."""
    expected = {w.key for w in writes if w.acknowledged}
    wait_for(lambda: expected <= consumer.keys and deployment.outbox_depth() == 0, timeout,
             f"the events of {len(expected - consumer.keys)} acknowledged writes")


def check_delivery(deployment: Deployment, consumer: Consumer, writes: list[Write]) -> Delivery:
    """Assert the bus holds exactly one event per acknowledged write, in each client's order per channel."""
    consumer.stop()
    assert len({w.key for w in writes}) == len(writes), "the load gave two writes the same key"
    stream = everything(consumer.bus)
    first: dict[int, Event] = {}
    for event in stream:
        first.setdefault(event.id, event)
    unique = list(first.values())

    acknowledged = {w.key: w for w in writes if w.acknowledged}
    refused = {w.key: w for w in writes if not w.acknowledged}
    counts = Counter(key_of(event) for event in unique)
    assert {key: n for key, n in counts.items() if n > 1} == {}, "one write, several events (distinct ids)"
    assert sorted(refused.keys() & counts.keys()) == [], "events of writes that were not acknowledged"
    assert sorted(counts.keys() - acknowledged.keys()) == [], "events nobody wrote"
    assert sorted(acknowledged.keys() - counts.keys()) == [], "acknowledged writes without an event"

    guild_partition = partition_of(deployment.guild_id, None, PARTITIONS)
    for event in unique:
        write = acknowledged[key_of(event)]
        assert (event.partition, event.guild_id, event.channel_id) == (
            guild_partition, deployment.guild_id, write.channel_id), (event, write)

    for channel_id in deployment.channel_ids:
        in_channel = [acknowledged[key_of(e)] for e in unique if e.channel_id == channel_id]
        for client in {w.client for w in in_channel}:
            order = [w.seq for w in in_channel if w.client == client]
            assert order == sorted(order), f"client {client}'s writes to channel {channel_id} out of order"
        created_at = {w.key[1]: index for index, w in enumerate(in_channel) if w.key[0] == "create"}
        for index, write in enumerate(in_channel):
            if write.message is not None:
                assert created_at[write.message] < index, f"{write.key} before the create of its message"

    event_of = {key_of(event): event for event in unique}
    delays = [consumer.arrived[event_of[key].id] - write.answered_at for key, write in acknowledged.items()]
    last_ack = max(w.answered_at for w in acknowledged.values())
    delivery = Delivery(acknowledged=len(acknowledged), refused=len(refused), delivered=len(unique),
                        duplicates=len(stream) - len(unique), longest_delay=max(delays),
                        last_ack_to_last_event=max(consumer.arrived.values()) - last_ack)
    print(f"\n{delivery}")
    return delivery


@contextmanager
def consuming(deployment: Deployment) -> Iterator[Consumer]:
    """A consumer of the deployment's guild partition, reading from now until the block ends."""
    bus = deployment.bus()
    consumer = Consumer(bus, partition_of(deployment.guild_id, None, PARTITIONS))
    try:
        yield consumer
    finally:
        consumer.stop()
        bus.close()


# -- the tests ---------------------------------------------------------------------------------------------------

@contextmanager
def broker(request_param: str) -> Iterator[dict[str, str]]:
    """The event settings of a bus: the database's own, or the machine's Redis under a prefix of this test."""
    if request_param != "redis":
        yield {"EVENT_BUS": "sql"}
        return
    require_redis()
    prefix = unique_prefix()
    try:
        yield {"EVENT_BUS": "redis", "REDIS_URL": REDIS_URL, "EVENT_REDIS_PREFIX": prefix}
    finally:
        delete_prefixed(REDIS_URL, prefix)


@pytest.mark.parametrize(("database", "bus"), [("sqlite", "sql"), ("postgres", "sql"), ("sqlite", "redis")])
def test_every_acknowledged_write_from_concurrent_clients_arrives_once_and_in_order(tmp_path, database, bus):
    with broker(bus) as events, deployment(tmp_path, database, writers=6, **events) as deployed, \
            gunicorn_server(deployed.environment) as server, consuming(deployed) as consumer:
        writes: list[Write] = []
        gevent.joinall(start_load(server, deployed, writes, per_client=40), raise_error=True)
        await_delivery(deployed, consumer, writes)
        delivery = check_delivery(deployed, consumer, writes)
    # No fault: every write was acknowledged.
    assert [w.status for w in writes if not w.acknowledged] == []
    assert delivery.acknowledged == 6 * 40


def test_writes_keep_succeeding_through_a_redis_outage_and_every_event_arrives_after_it(tmp_path):
    """The broker is stopped with SIGTERM and started again on the same port and directory: a real outage
    (connections refused), with an append-only file so the events relayed before it survive the restart."""
    (tmp_path / "redis").mkdir()
    with throwaway_redis(free_port(), tmp_path / "redis", append_only=True) as redis_server, \
            deployment(tmp_path, "sqlite", writers=4, EVENT_BUS="redis", REDIS_URL=redis_server.url,
                       EVENT_REDIS_PREFIX="outage") as deployed, \
            gunicorn_server(deployed.environment) as server, consuming(deployed) as consumer:
        writes: list[Write] = []
        started = time.monotonic()
        # Bounded by time and by the stop below, not by a count: a fast machine must still be writing through
        # the whole outage (250 writes each were once all done before its fourth second).
        stop = gevent.event.Event()
        load = start_load(server, deployed, writes, per_client=100_000, seconds=60, stop=stop)

        def acknowledged() -> int:
            return sum(w.acknowledged for w in writes)

        wait_for(lambda: time.monotonic() - started >= 2 and acknowledged() >= 30, 10, "writes to flow")
        redis_server.stop()
        down_at, acknowledged_before = time.monotonic(), acknowledged()
        wait_for(lambda: time.monotonic() - down_at >= 4 and acknowledged() - acknowledged_before >= 30, 15,
                 "four seconds of writes with the broker down")
        held_in_outbox = deployed.outbox_depth()
        acknowledged_during = acknowledged() - acknowledged_before
        redis_server.start()
        gevent.sleep(1)  # writes after the restart too
        stop.set()
        gevent.joinall(load, raise_error=True)
        await_delivery(deployed, consumer, writes)
        delivery = check_delivery(deployed, consumer, writes)

    acknowledged_after = sum(w.acknowledged for w in writes) - acknowledged_before - acknowledged_during
    print(f"outage: {acknowledged_before} writes acknowledged before it, {acknowledged_during} while redis was down "
          f"({held_in_outbox} events held in the outbox at its restart), {acknowledged_after} after")
    assert held_in_outbox > 0, "nothing waited for the broker: the outage was not seen"
    refusals = [(w.status, w.retry_after) for w in writes if not w.acknowledged]
    assert all(status == 503 and retry_after for status, retry_after in refusals), refusals
    assert delivery.longest_delay >= 1, "no event waited for the broker to come back"


def test_events_of_writes_whose_workers_were_killed_before_publishing_arrive_once_each(tmp_path):
    """The broker hangs (SIGSTOP: connections stay open, calls time out) while the writes are made, so their
    events wait in the outbox; then every worker is SIGKILLed, possibly in the middle of a publish."""
    (tmp_path / "redis").mkdir()
    with throwaway_redis(free_port(), tmp_path / "redis") as redis_server, \
            deployment(tmp_path, "sqlite", writers=3, EVENT_BUS="redis", REDIS_URL=redis_server.url,
                       EVENT_REDIS_PREFIX="killed") as deployed, \
            gunicorn_server(deployed.environment) as server:
        redis_server.pause()
        writes: list[Write] = []
        gevent.joinall(start_load(server, deployed, writes, per_client=15), raise_error=True)
        assert [w.status for w in writes if not w.acknowledged] == []
        assert deployed.outbox_depth() == len(writes), "events were published with the broker stopped"

        workers = wait_for(lambda: len(found := children_of(server.process.pid)) == 2 and found, 10, "two workers")
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: len(found := children_of(server.process.pid)) == 2 and not found & workers, 20,
                 "two new workers")
        redis_server.resume()
        with consuming(deployed) as consumer:
            # The killed leader's SQLite lease runs out (10 s) before a new worker's relay may lead.
            await_delivery(deployed, consumer, writes, timeout=30)
            delivery = check_delivery(deployed, consumer, writes)

    print(f"after SIGKILL: {delivery.duplicates} duplicates by id")
    assert delivery.acknowledged == len(writes)
