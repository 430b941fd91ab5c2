"""One GatewayHub per worker: reads the event stream and fans each event out to the worker's sessions.

One reader greenlet per partition follows the bus from the position it had when the hub started (the sessions of
a worker only receive what happens while they are connected; a RESUME replays the rest itself). Each event is
prepared once (its ``d`` serialized once, the guild's view read if needed) before anything is handed to a
session; handing over only appends to the session's queue, so a slow client never holds up the loop.
"""
from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import gevent
import gevent.event
import gevent.lock
import orjson
from cachetools import LRUCache

from app.domain import ChannelType
from app.events.base import Event, EventBusUnavailable, PositionExpired
from app.gateway.protocol import CONTENT_EVENTS
from app.gateway.store import SessionStore
from app.gateway.views import (
    INVALIDATING_EVENTS,
    GuildView,
    ThreadEntry,
    dm_recipients,
    load_members,
    load_view,
)
from app.ids import snowflake_ms
from app.observability.metrics import GATEWAY_DISPATCHES, GATEWAY_FANOUT_LATENCY
from app.observability.tracing import consuming

if TYPE_CHECKING:
    from app.extensions import Resources
    from app.gateway.connection import GatewayConnection

log = logging.getLogger(__name__)

#: Events read per call, and how long a read waits for one before looking again.
READ_BATCH = 500
READ_BLOCK_SECONDS = 5.0
#: How often the SQL bus is asked whether any partition moved.
SQL_POLL_SECONDS = 0.02
#: How often the dispatch counts reach the metric.
METRICS_FLUSH_SECONDS = 1.0
#: Ids remembered per partition to drop the duplicates of at-least-once delivery.
SEEN_IDS = 2048
#: DM channels whose two users the hub keeps in memory.
DM_RECIPIENTS_KEPT = 100_000
#: Private threads remembered after they left the views (for their THREAD_DELETE's audience).
GONE_THREADS_KEPT = 10_000


#: What a session without MESSAGE_CONTENT receives of a message's content fields.
_NO_CONTENT = {"content": "", "embeds": [], "attachments": [], "components": []}


@dataclass
class PreparedEvent:
    """An event made ready for every session: ``d`` serialized once, and the visibility before the event for the
    users with sessions in its guild when it may change what they can see."""

    event: Event
    data: bytes
    view: GuildView | None
    author_id: int | None = None
    mention_ids: frozenset[int] = frozenset()
    member_user_id: int | None = None
    #: user id -> channels visible before the event (only for events that may change visibility).
    before: dict[int, frozenset[int]] | None = None
    old_channels: dict[int, Any] = field(default_factory=dict)
    #: A private thread's THREAD_DELETE: the users who could see the thread before it went (None: any other event).
    thread_viewers: frozenset[int] | None = None
    #: A DM's event: the channel's two users (None for a guild's event).
    recipients: frozenset[int] | None = None
    _stripped: bytes | None = None

    @property
    def stripped(self) -> bytes:
        """``d`` without the content, for sessions lacking MESSAGE_CONTENT (serialized once, on first need)."""
        if self._stripped is None:
            data = orjson.loads(self.data)
            data.update(_NO_CONTENT)
            if isinstance(data.get("referenced_message"), dict):
                # The replied-to message is a message object too, stripped alike.
                data["referenced_message"].update(_NO_CONTENT)
            self._stripped = orjson.dumps(data)
        return self._stripped


def _private_thread_viewers(old: GuildView | None, view: GuildView | None, entry: ThreadEntry | None,
                            parent_id: int, users: Iterable[int]) -> frozenset[int]:
    """Who, among ``users``, could see a private thread that was just deleted (``entry``: what a view read before
    the delete held of it): THREAD_DELETE is recorded on its parent, whose other viewers must not learn the
    thread's id and type. Judged by the view from before the event where it knows the user, else by the current
    one; with no entry at all, the thread's members are no longer known and only MANAGE_THREADS holders of the
    parent receive it."""
    viewers = set()
    for user_id in users:
        if entry is not None and old is not None and user_id in old.members:
            seen = old.can_view_thread(user_id, entry)
        elif entry is not None:
            seen = view is not None and view.can_view_thread(user_id, entry)
        else:
            seen = view is not None and view.manages_threads(user_id, parent_id)
        if seen:
            viewers.add(user_id)
    return frozenset(viewers)


def _user_id(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    if isinstance(value, dict) and value.get("id") is not None:
        return int(value["id"])
    return None


class GatewayHub:
    def __init__(self, resources: Resources):
        self.resources = resources
        self.settings = resources.settings
        self.store = SessionStore(resources.engine,
                                  resume_window=timedelta(seconds=self.settings.gateway_resume_window_seconds))
        self.sessions: dict[str, GatewayConnection] = {}
        self.by_guild: dict[int, set[GatewayConnection]] = {}
        self.by_user: dict[int, set[GatewayConnection]] = {}
        #: Per partition, the position of the last event handed to the sessions.
        self.positions: dict[int, str | None] = {}
        self._views: dict[int, GuildView] = {}
        #: (guild id, thread id) -> a private thread that a view held and the next read of the guild did not
        #: (deleted, most likely): its members decide who receives its THREAD_DELETE, which may come later.
        self._gone_threads: LRUCache = LRUCache(maxsize=GONE_THREADS_KEPT)
        #: A DM channel's two users: fixed for the channel's life, so kept without invalidation (the most recently
        #: used ones: a worker sees an unbounded number of DMs over its life).
        self._dm_recipients: LRUCache[int, frozenset[int]] = LRUCache(maxsize=DM_RECIPIENTS_KEPT)
        self._view_versions: dict[int, int] = {}
        self._seen: dict[int, OrderedDict[int, None]] = {}
        self._start_lock = gevent.lock.Semaphore()
        self._readers: list[gevent.Greenlet] = []
        self.stopping = False
        #: Dispatches queued per type since the last flush to the metric: a Counter's labelled increment takes a
        #: lock and would be paid per session per event.
        self.dispatched: Counter[str] = Counter()

    @property
    def bus(self):
        return self.resources.event_bus

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def ensure_started(self) -> None:
        """Start following the stream (first session of the worker); raises EventBusUnavailable."""
        if self._readers:
            return
        with self._start_lock:
            if self._readers:
                return
            bus = self.bus
            positions = {p: bus.latest_position(p) for p in range(bus.partitions)}
            self.positions.update(positions)
            if bus.backend == "sql":
                self._readers = [gevent.spawn(self._poll_all)]
            else:
                self._readers = [gevent.spawn(self._follow, p) for p in range(bus.partitions)]
            self._readers.append(gevent.spawn(self._flush_metrics))

    def shutdown(self) -> None:
        """Graceful stop: every session is saved and told to RECONNECT (it resumes on another worker)."""
        self.stopping = True
        for reader in self._readers:
            reader.kill(block=False)
        connections = list(self.sessions.values())
        gevent.joinall([gevent.spawn(c.reconnect_elsewhere) for c in connections], timeout=10)

    def _flush_metrics(self) -> None:
        while not self.stopping:
            gevent.sleep(METRICS_FLUSH_SECONDS)
            counts, self.dispatched = self.dispatched, Counter()
            for type_, count in counts.items():
                GATEWAY_DISPATCHES.labels(type_).inc(count)

    # -- sessions ----------------------------------------------------------------------------------------------

    def register(self, connection: GatewayConnection) -> dict[int, str | None]:
        """Start handing events to ``connection``; returns the positions after which it receives everything.

        Nothing here yields, so no event is handed out between reading the positions and subscribing.
        """
        self.sessions[connection.session_id] = connection
        self.by_user.setdefault(connection.user_id, set()).add(connection)
        for guild_id in connection.guilds:
            self.by_guild.setdefault(guild_id, set()).add(connection)
        return dict(self.positions)

    def unregister(self, connection: GatewayConnection) -> None:
        if self.sessions.get(connection.session_id) is connection:
            del self.sessions[connection.session_id]
        _discard(self.by_user, connection.user_id, connection)
        for guild_id in list(connection.guilds):
            _discard(self.by_guild, guild_id, connection)

    def joined(self, connection: GatewayConnection, guild_id: int) -> None:
        self.by_guild.setdefault(guild_id, set()).add(connection)

    def left(self, connection: GatewayConnection, guild_id: int) -> None:
        _discard(self.by_guild, guild_id, connection)

    # -- views -------------------------------------------------------------------------------------------------

    def view(self, guild_id: int, user_ids: Iterable[int]) -> GuildView | None:
        """The guild's view with the members of ``user_ids`` loaded, read from the database when needed."""
        user_ids = set(user_ids)
        view = self._views.get(guild_id)
        if view is not None and all(u in view.members for u in user_ids):
            return view
        version = self._view_versions.get(guild_id, 0)
        with self.resources.session() as session:
            if view is None:
                view = load_view(session, guild_id, user_ids)
            else:
                load_members(session, view, user_ids)
        if view is not None and self._view_versions.get(guild_id, 0) == version:
            # Kept only when no event invalidated the guild while it was being read.
            self._views[guild_id] = view
        return view

    def _invalidate(self, guild_id: int) -> GuildView | None:
        self._view_versions[guild_id] = self._view_versions.get(guild_id, 0) + 1
        return self._views.pop(guild_id, None)

    def prepare(self, event: Event, *, live: bool) -> PreparedEvent | None:
        """Make the event ready for sessions (None when no session may receive it). May read the database.

        ``live``: the event comes from the hub's own reading, in order, so a change of visibility is computed
        against the view before it; a replay only filters with the current view.
        """
        guild_id = event.guild_id
        if event.backfill:
            return None
        if guild_id is None:
            return self._prepare_direct(event)
        data = event.data
        users = {c.user_id for c in self.by_guild.get(guild_id, ())}
        member_user_id = _user_id(data, "user") if event.type.startswith("GUILD_MEMBER_") else None
        joining = set()
        if member_user_id is not None:
            joining.add(member_user_id)
        if event.type == "GUILD_CREATE":
            joining.update(int(m["user"]["id"]) for m in data.get("members", ()) if int(m["user"]["id"])
                           in self.by_user)
        users |= {u for u in joining if u in self.by_user}
        if not users:
            return None
        before = None
        old_channels: dict[int, Any] = {}
        old = None
        if event.type in INVALIDATING_EVENTS:
            old = self._invalidate(guild_id)
            if live and old is not None:
                before = {u: old.visible_channels(u) for u in users if u in old.members}
                old_channels = {c: entry.json for c, entry in old.channels.items()}
        author_id = _user_id(data, "author") if event.type in CONTENT_EVENTS else None
        view = self.view(guild_id, users | ({author_id} if author_id is not None else set()))
        if event.type == "MESSAGE_CREATE" and view is not None and view.members.get(author_id):
            # Discord's MESSAGE_CREATE carries the author's partial member (the member object without ``user``).
            member = {k: v for k, v in view.members[author_id].items() if k != "user"}
            data = {**data, "member": member}
        mentions = frozenset(int(m["id"]) for m in data.get("mentions", ()) if isinstance(m, dict) and "id" in m)
        if old is not None and view is not None:
            self._remember_gone_threads(guild_id, old, view)
        thread_viewers = None
        if event.type == "THREAD_DELETE" and data.get("type") == ChannelType.PRIVATE_THREAD:
            thread_id = int(data["id"])
            entry = (old.threads.get(thread_id) if old is not None else None) or self._gone_threads.get(
                (guild_id, thread_id))
            thread_viewers = _private_thread_viewers(old, view, entry, int(data["parent_id"]), users)
        return PreparedEvent(event=event, data=orjson.dumps(data), view=view, author_id=author_id,
                             mention_ids=mentions, member_user_id=member_user_id, before=before,
                             old_channels=old_channels, thread_viewers=thread_viewers)

    def _remember_gone_threads(self, guild_id: int, old: GuildView, view: GuildView) -> None:
        for thread_id, entry in old.threads.items():
            if entry.private and thread_id not in view.threads:
                self._gone_threads[(guild_id, thread_id)] = entry

    def _prepare_direct(self, event: Event) -> PreparedEvent | None:
        """A DM's event, for the sessions of its two users (nobody else may know the DM exists)."""
        channel_id = event.channel_id
        if channel_id is None:
            return None
        recipients = self._dm_recipients.get(channel_id)
        if recipients is None:
            with self.resources.session() as session:
                recipients = dm_recipients(session, channel_id)
            if recipients is None:
                return None
            self._dm_recipients[channel_id] = recipients
        if not any(user_id in self.by_user for user_id in recipients):
            return None
        data = event.data
        author_id = _user_id(data, "author") if event.type in CONTENT_EVENTS else None
        return PreparedEvent(event=event, data=orjson.dumps(data), view=None, author_id=author_id,
                             recipients=recipients)

    # -- fan-out -----------------------------------------------------------------------------------------------

    def _follow(self, partition: int) -> None:
        while not self.stopping:
            self._read_once(partition, block_seconds=READ_BLOCK_SECONDS)

    def _poll_all(self) -> None:
        """The SQL bus: one query for every partition's newest position, then reads of those that moved. Its
        blocking reads poll each partition every 20 ms on SQLite, which for 16 partitions cost 1.65x CPU per REST
        write in a worker with sessions (docs/measurements.md); this asks once per tick."""
        while not self.stopping:
            try:
                latest = self.bus.latest_positions()
            except EventBusUnavailable as error:
                gevent.sleep(error.retry_after)
                continue
            moved = [p for p, position in latest.items()
                     if position is not None and position != self.positions.get(p)]
            for partition in moved:
                self._read_once(partition)
            if not moved:
                gevent.sleep(SQL_POLL_SECONDS)

    def _read_once(self, partition: int, block_seconds: float = 0) -> None:
        try:
            events = self.bus.read(partition, self.positions.get(partition), READ_BATCH, block_seconds)
        except PositionExpired:
            self._lost(partition)
            return
        except EventBusUnavailable as error:
            gevent.sleep(error.retry_after)
            return
        except Exception:
            log.exception("gateway hub: reading partition %s failed", partition)
            gevent.sleep(1.0)
            return
        for event in events:
            self._fan_out(partition, event)

    def _lost(self, partition: int) -> None:
        """The hub fell further behind than the retention: sessions may have missed events of the partition.
        Every session is closed (4000): their RESUME finds the position gone too and they identify again, with a
        fresh state, as Discord's clients do after INVALID_SESSION. Every one, not only those of the partition's
        guilds: a session's DMs are partitioned by channel, and this is rare enough not to track them."""
        log.error("gateway hub: partition %s trimmed past its position; its sessions start over", partition)
        self.positions[partition] = self._newest_position(partition)
        for connection in list(self.sessions.values()):
            connection.drop("events were lost; resume")

    def _newest_position(self, partition: int) -> str | None:
        try:
            return self.bus.latest_position(partition)
        except EventBusUnavailable:
            return self.positions.get(partition)

    def _fan_out(self, partition: int, event: Event) -> None:
        if self._is_duplicate(partition, event.id):
            self.positions[partition] = event.position
            return
        # The fan-out continues the trace of the request that wrote the event.
        with consuming("chatstore.gateway.fanout", event.traceparent, **{"messaging.system": self.bus.backend}):
            self._deliver_live(partition, event)
        self.positions[partition] = event.position

    def _deliver_live(self, partition: int, event: Event) -> None:
        try:
            prepared = self.prepare(event, live=True)
        except Exception:
            log.exception("gateway hub: preparing event %s failed; it is not delivered live", event.id)
            prepared = None
        if prepared is not None:
            # From here to the position update nothing yields (ending the consumer span does not either): a session
            # registering meanwhile either gets this event or starts after it.
            if prepared.recipients is not None:
                targets = set()
                for user_id in prepared.recipients:
                    targets |= self.by_user.get(user_id, set())
            else:
                targets = set(self.by_guild.get(event.guild_id, ()))
            if prepared.member_user_id is not None or event.type == "GUILD_CREATE":
                for user_id in (prepared.view.members if prepared.view else {}):
                    targets |= self.by_user.get(user_id, set())
            for connection in targets:
                connection.offer(prepared)
            GATEWAY_FANOUT_LATENCY.observe(max(0.0, time.time() - snowflake_ms(event.id) / 1000))

    def _is_duplicate(self, partition: int, event_id: int) -> bool:
        seen = self._seen.setdefault(partition, OrderedDict())
        if event_id in seen:
            return True
        seen[event_id] = None
        if len(seen) > SEEN_IDS:
            seen.popitem(last=False)
        return False


def _discard(index: dict[int, set], key: int, connection) -> None:
    members = index.get(key)
    if members is not None:
        members.discard(connection)
        if not members:
            del index[key]
