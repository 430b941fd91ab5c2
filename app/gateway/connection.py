"""One gateway WebSocket connection: HELLO, IDENTIFY or RESUME, heartbeats, and the dispatches it receives.

The request greenlet reads what the client sends (``run``); what goes to the client is queued and written by a
writer greenlet that exists only while the queue is not empty, so the hub never waits for a client. Every frame,
READY and heartbeat ACKs included, goes through that one queue, in order, through the connection's zlib stream.
"""
from __future__ import annotations

import logging
import secrets
import time
import zlib
from collections import deque
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import gevent
import orjson
from simple_websocket import ConnectionClosed
from sqlalchemy import select

from app.auth.tokens import authenticate
from app.errors import Unauthorized
from app.events.base import EventBusUnavailable, PositionExpired
from app.gateway.protocol import (
    CONTENT_EVENTS,
    KNOWN_INTENTS,
    MAX_PAYLOAD_BYTES,
    PERMISSION_OF,
    PRIVILEGED_INTENTS,
    SENDS_PER_MINUTE,
    Close,
    Intent,
    Op,
    new_compressor,
    required_intent,
)
from app.gateway.store import SavedSession
from app.gateway.views import guilds_of, search_members
from app.observability.metrics import GATEWAY_CLOSES, GATEWAY_RESUMES, GATEWAY_SESSIONS
from app.read_cache import ReadPath
from app.services.wire import user_json
from models import User

if TYPE_CHECKING:
    from app.gateway.hub import GatewayHub, PreparedEvent

log = logging.getLogger(__name__)

#: Frames queued for one client beyond which it is too slow to follow: it is closed with 4000 (Discord's
#: "unknown error, reconnect"), and its RESUME replays what it missed from the stream.
MAX_QUEUED_FRAMES = 2000
#: A client that neither identifies nor resumes within this many heartbeat intervals is closed with 4003, even if
#: it heartbeats.
IDENTIFY_INTERVALS = 2
#: How long a RESUME waits for the worker that still serves the session to let it go.
RESUME_WAIT_SECONDS = 3.0
#: Discord's largest shard count; a bigger one is refused with 4010.
MAX_SHARDS = 4096
#: Members per GUILD_MEMBERS_CHUNK, as Discord sends them.
CHUNK_SIZE = 1000
# Plain ints: ``&`` with an IntFlag member builds a new flag each time, a cost paid per session per event.
_GUILDS, _GUILD_MEMBERS, _MESSAGE_CONTENT = int(Intent.GUILDS), int(Intent.GUILD_MEMBERS), int(Intent.MESSAGE_CONTENT)
_THREAD_MEMBER_EVENTS = frozenset({"THREAD_MEMBER_UPDATE", "THREAD_MEMBERS_UPDATE"})
_PRIVILEGED_NAMES = {int(Intent.GUILD_MEMBERS): "GUILD_MEMBERS", int(Intent.GUILD_PRESENCES): "GUILD_PRESENCES",
                     int(Intent.MESSAGE_CONTENT): "MESSAGE_CONTENT"}

SEND_WINDOW_SECONDS = 60.0


class CloseConnection(Exception):
    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _frame(op: int, data: Any, *, seq: int | None = None, type_: str | None = None) -> bytes:
    return orjson.dumps({"op": op, "d": data, "s": seq, "t": type_})


class GatewayConnection:
    def __init__(self, hub: GatewayHub, ws, *, compress: bool, resume_url: str):
        self.hub = hub
        self.ws = ws
        self.settings = hub.settings
        self.resume_url = resume_url
        self.compressor = new_compressor() if compress else None
        self.owner = secrets.token_hex(8)
        self.session_id: str | None = None
        self.user_id: int | None = None
        self.intents = 0
        self.shard = [0, 1]
        self.guilds: set[int] = set()
        self.seq = 0
        self.base_seq = 0
        self.base: dict[int, str | None] = {}
        self.pending: deque[tuple[int, int | None, str | None]] = deque()
        #: While a RESUME replays the stream, live events wait here (then those it replayed are dropped).
        self.buffer: list[PreparedEvent] | None = None
        #: After a RESUME, per partition, the order key of the position through which the session has every event:
        #: this worker's hub may be behind the worker the session came from, and hand out events again.
        self.floor: dict[int, tuple[int, ...]] = {}
        self._out: deque[bytes] = deque()
        self._writer: gevent.Greenlet | None = None
        self.closed = False
        self.handed_over = False
        self.interval = self.settings.gateway_heartbeat_interval_ms / 1000
        self.opened = self.last_heartbeat = time.monotonic()
        self.heartbeat_requested = False
        # Discord's 120 payloads per 60 s, as a fixed window of two numbers on the connection. By hand rather than
        # with the `limits` package (the REST limits' library): its in-memory storage keeps a lock and a key per
        # counter and, after every hit, runs a timer that scans all keys, for a count that dies with its
        # connection anyway.
        self.window_started = time.monotonic()
        self.window_sends = 0

    # -- the read loop -----------------------------------------------------------------------------------------

    def run(self) -> None:
        GATEWAY_SESSIONS.inc()
        try:
            self._send(_frame(Op.HELLO, {"heartbeat_interval": self.settings.gateway_heartbeat_interval_ms}))
            while not self.closed:
                if self.user_id is None and time.monotonic() - self.opened > IDENTIFY_INTERVALS * self.interval:
                    raise CloseConnection(Close.NOT_AUTHENTICATED, "identify or resume in time")
                raw = self.ws.receive(timeout=self._until_deadline())
                if raw is None:
                    if not self.ws.connected:
                        break
                    self._check_heartbeat()
                    continue
                self._handle(raw)
        except CloseConnection as close:
            self._close(close.code, close.reason)
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("gateway: connection failed")
            self._close(Close.UNKNOWN_ERROR, "server error; reconnect")
        finally:
            self._finish()
            GATEWAY_SESSIONS.dec()

    def refuse(self, close: CloseConnection) -> None:
        """Close at once (a version or encoding the gateway does not serve)."""
        self._close(close.code, close.reason)

    def _until_deadline(self) -> float:
        """Seconds until the next check: the request for a heartbeat (op 1), the 4009 deadline, or (before
        IDENTIFY) the 4003 one."""
        elapsed = time.monotonic() - self.last_heartbeat
        target = self.interval * (1.5 if self.heartbeat_requested else 1.25)
        wait = target - elapsed + 1.0
        if self.user_id is None:
            wait = min(wait, IDENTIFY_INTERVALS * self.interval - (time.monotonic() - self.opened) + 0.05)
        return max(0.05, wait)

    def _check_heartbeat(self) -> None:
        elapsed = time.monotonic() - self.last_heartbeat
        if elapsed > self.interval * 1.5 + 1.0:
            raise CloseConnection(Close.SESSION_TIMED_OUT, "no heartbeat in time")
        if elapsed > self.interval * 1.25 + 1.0 and not self.heartbeat_requested:
            # Discord's op 1 from the server: the client answers with a heartbeat at once.
            self.heartbeat_requested = True
            self._send(_frame(Op.HEARTBEAT, None))

    def _handle(self, raw: str | bytes) -> None:
        if len(raw) > MAX_PAYLOAD_BYTES:
            raise CloseConnection(Close.DECODE_ERROR, f"payloads are limited to {MAX_PAYLOAD_BYTES} bytes")
        if not self._within_send_limit():
            raise CloseConnection(Close.RATE_LIMITED, f"more than {SENDS_PER_MINUTE} payloads in 60 s")
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise CloseConnection(Close.DECODE_ERROR, "payload is not JSON") from None
        if not isinstance(payload, dict) or type(payload.get("op")) is not int:
            raise CloseConnection(Close.DECODE_ERROR, "payload must be an object with an integer op")
        op, data = payload["op"], payload.get("d")
        if op == Op.HEARTBEAT:
            self._heartbeat(data)
        elif op == Op.IDENTIFY:
            if self.user_id is not None:
                raise CloseConnection(Close.ALREADY_AUTHENTICATED, "already identified")
            self._identify(data)
        elif op == Op.RESUME:
            if self.user_id is not None:
                raise CloseConnection(Close.ALREADY_AUTHENTICATED, "already identified")
            self._resume(data)
        elif op not in (Op.PRESENCE_UPDATE, Op.VOICE_STATE_UPDATE, Op.REQUEST_GUILD_MEMBERS):
            raise CloseConnection(Close.UNKNOWN_OPCODE, f"unknown opcode {op}")
        elif self.user_id is None:
            raise CloseConnection(Close.NOT_AUTHENTICATED, "identify first")
        elif op == Op.REQUEST_GUILD_MEMBERS:
            self._request_members(data)
        elif not isinstance(data, dict):
            raise CloseConnection(Close.DECODE_ERROR, "d must be an object")
        # Presence and voice updates are accepted and have no effect: the service stores no presences and has
        # no voice (docs/gateway.md).

    def _within_send_limit(self) -> bool:
        now = time.monotonic()
        if now - self.window_started >= SEND_WINDOW_SECONDS:
            self.window_started, self.window_sends = now, 0
        self.window_sends += 1
        return self.window_sends <= SENDS_PER_MINUTE

    # -- heartbeats --------------------------------------------------------------------------------------------

    def _heartbeat(self, data: Any) -> None:
        if data is not None and type(data) is not int:
            raise CloseConnection(Close.DECODE_ERROR, "a heartbeat's d is the last sequence number or null")
        self.last_heartbeat = time.monotonic()
        self.heartbeat_requested = False
        self._send(_frame(Op.HEARTBEAT_ACK, None))
        if self.session_id is None or self.buffer is not None:
            return
        if data is not None:
            self._acknowledge(min(data, self.seq))
        self._save(open_=True)

    def _acknowledge(self, seq: int) -> None:
        """The client has everything through ``seq``: fold those dispatches into the base positions."""
        while self.pending and self.pending[0][0] <= seq:
            _, partition, position = self.pending.popleft()
            if position is not None:
                self.base[partition] = position
        self.base_seq = max(self.base_seq, seq)
        if not self.pending and not self._out:
            # Nothing unacknowledged: whatever the hub handed out since was filtered out for this session, so a
            # resume can start where the hub is now instead of filtering those events again.
            self.base = dict(self.hub.positions)

    # -- identify ----------------------------------------------------------------------------------------------

    def _authenticate(self, token: Any) -> tuple[Any, int]:
        if not isinstance(token, str) or not token:
            raise CloseConnection(Close.DECODE_ERROR, "token must be a string")
        header = token if token.startswith("Bot ") else f"Bot {token}"
        with self.hub.resources.session() as session:
            try:
                user = authenticate(session, header, ReadPath())
            except Unauthorized:
                raise CloseConnection(Close.AUTHENTICATION_FAILED, "authentication failed") from None
            allowed = session.scalar(select(User.privileged_intents).where(User.id == user.id)) or 0
        return user, allowed

    def _identify(self, data: Any) -> None:
        if not isinstance(data, dict) or not isinstance(data.get("properties", {}), dict):
            raise CloseConnection(Close.DECODE_ERROR, "IDENTIFY's d must be an object")
        intents = data.get("intents")
        if type(intents) is not int or intents < 0:
            raise CloseConnection(Close.DECODE_ERROR, "intents must be a non-negative integer")
        if intents & ~KNOWN_INTENTS:
            raise CloseConnection(Close.INVALID_INTENTS, "unknown intent bits")
        shard = data.get("shard", [0, 1])
        if not (isinstance(shard, list) and len(shard) == 2 and all(type(v) is int for v in shard)
                and 1 <= shard[1] <= MAX_SHARDS and 0 <= shard[0] < shard[1]):
            raise CloseConnection(Close.INVALID_SHARD, "shard must be [id, count] with 0 <= id < count")
        user, allowed = self._authenticate(data.get("token"))
        refused = intents & PRIVILEGED_INTENTS & ~allowed
        if refused:
            names = ", ".join(n for bit, n in _PRIVILEGED_NAMES.items() if refused & bit)
            raise CloseConnection(Close.DISALLOWED_INTENTS, f"privileged intents not allowed: {names}")
        limited = self.hub.store.record_identify(user.id, day_limit=self.settings.gateway_session_start_limit,
                                                 concurrency=self.settings.gateway_max_concurrency)
        if limited is not None:
            raise CloseConnection(Close.RATE_LIMITED, "session start limit reached" if limited == "day"
                                  else "identifying too fast (max_concurrency per 5 s)")
        try:
            self.hub.ensure_started()
        except EventBusUnavailable:
            raise CloseConnection(Close.UNKNOWN_ERROR, "event stream unavailable; reconnect") from None
        self.user_id, self.intents, self.shard = user.id, intents, shard
        self.user = user
        with self.hub.resources.session() as session:
            self.guilds = {g for g in guilds_of(session, user.id) if self._in_shard(g)}
        guild_creates = []
        for guild_id in sorted(self.guilds):
            view = self.hub.view(guild_id, [user.id])
            if view is not None:
                guild_creates.append(view.guild_create(user.id))
        self.session_id = secrets.token_hex(16)
        self.base = self.hub.register(self)
        ready = {
            "v": 10, "user": {**user_json(user), "verified": True, "mfa_enabled": False, "email": None},
            "guilds": [{"id": str(g), "unavailable": True} for g in sorted(self.guilds)],
            "session_id": self.session_id, "session_type": "normal", "resume_gateway_url": self.resume_url,
            "shard": shard, "application": {"id": str(user.id), "flags": 0}, "private_channels": [],
            "relationships": [], "presences": [], "guild_join_requests": [], "geo_ordered_rtc_regions": [],
            "user_settings": {}, "auth": {},
        }
        self._dispatch("READY", orjson.dumps(ready), None, None)
        if self.intents & _GUILDS:
            for guild in guild_creates:
                self._dispatch("GUILD_CREATE", orjson.dumps(guild), None, None)
        self._save(open_=True)

    def _in_shard(self, guild_id: int) -> bool:
        return (guild_id >> 22) % self.shard[1] == self.shard[0]

    # -- resume ------------------------------------------------------------------------------------------------

    def _resume(self, data: Any) -> None:
        if not isinstance(data, dict) or not isinstance(data.get("session_id"), str) or (
                data.get("seq") is not None and type(data.get("seq")) is not int):
            raise CloseConnection(Close.DECODE_ERROR, "RESUME needs token, session_id and seq")
        user, _ = self._authenticate(data.get("token"))
        session_id, client_seq = data["session_id"], data.get("seq") or 0
        saved = self._take_over(session_id, user.id)
        if saved is None:
            return
        if not saved.base_seq <= client_seq <= saved.seq:
            GATEWAY_RESUMES.labels("invalid").inc()
            self._save_state(session_id, saved, open_=False)
            raise CloseConnection(Close.INVALID_SEQ, f"seq {client_seq} was never sent by session")
        try:
            self.hub.ensure_started()
        except EventBusUnavailable:
            self._save_state(session_id, saved, open_=False)
            raise CloseConnection(Close.UNKNOWN_ERROR, "event stream unavailable; reconnect") from None
        self.user = user
        self.user_id, self.intents, self.shard = user.id, saved.intents, saved.shard
        self.guilds = set(saved.guilds)
        self.session_id = session_id
        self.seq = self.base_seq = client_seq
        starts = saved.positions_at(client_seq)
        self.base = dict(starts)
        self.buffer = []
        self.hub.register(self)
        replayed: set[int] = set()
        try:
            for partition in range(self.hub.bus.partitions):
                self._replay(partition, starts.get(partition), replayed)
        except PositionExpired:
            GATEWAY_RESUMES.labels("invalid").inc()
            self.hub.unregister(self)
            self.session_id = None
            self._send(_frame(Op.INVALID_SESSION, False))
            return
        except EventBusUnavailable:
            self.hub.unregister(self)
            self._save_state(session_id, saved, open_=False)
            self.session_id = None
            raise CloseConnection(Close.UNKNOWN_ERROR, "event stream unavailable; reconnect") from None
        buffered, self.buffer = self.buffer, None
        for prepared in buffered:
            if prepared.event.id not in replayed and not self._already_has(prepared):
                self.deliver(prepared)
        self._dispatch("RESUMED", b"{}", None, None)
        GATEWAY_RESUMES.labels("ok").inc()
        self._save(open_=True)

    def _take_over(self, session_id: str, user_id: int) -> SavedSession | None:
        """The saved session to resume, taken from whoever served it; None after answering INVALID_SESSION."""
        live = self.hub.sessions.get(session_id)
        if live is not None and live is not self:
            live.hand_over()
        stale = timedelta(seconds=self.interval * 1.5 + 1.0)
        deadline = time.monotonic() + RESUME_WAIT_SECONDS
        while True:
            outcome, saved = self.hub.store.claim(session_id, user_id, self.owner,
                                                  stale_before=datetime.now(timezone.utc) - stale)
            if outcome != "busy" or time.monotonic() > deadline:
                break
            gevent.sleep(0.1)
        if outcome == "ok":
            return saved
        GATEWAY_RESUMES.labels(outcome if outcome != "ok" else "invalid").inc()
        # Busy: another connection still holds the session, so the client may try again (d true); otherwise the
        # session is gone and it must identify (d false).
        self._send(_frame(Op.INVALID_SESSION, outcome == "busy"))
        return None

    def _replay(self, partition: int, after: str | None, replayed: set[int]) -> None:
        bus = self.hub.bus
        while True:
            if after is not None:
                self.floor[partition] = bus.position_order(after)
            events = bus.read(partition, after, 500, 0)
            if not events:
                return
            for event in events:
                after = event.position
                if event.id in replayed:
                    continue
                replayed.add(event.id)
                prepared = self.hub.prepare(event, live=False)
                if prepared is not None:
                    self.deliver(prepared, position=(partition, event.position))

    # -- request guild members ---------------------------------------------------------------------------------

    def _request_members(self, data: Any) -> None:
        if not isinstance(data, dict):
            raise CloseConnection(Close.DECODE_ERROR, "d must be an object")
        guild_ids = data.get("guild_id")
        guild_ids = guild_ids if isinstance(guild_ids, list) else [guild_ids]
        try:
            guild_ids = [int(g) for g in guild_ids]
        except (TypeError, ValueError):
            raise CloseConnection(Close.DECODE_ERROR, "guild_id must be a snowflake") from None
        query, user_ids, limit = data.get("query"), data.get("user_ids"), data.get("limit", 0)
        nonce = data.get("nonce")
        if user_ids is not None:
            user_ids = user_ids if isinstance(user_ids, list) else [user_ids]
            try:
                user_ids = [int(u) for u in user_ids]
            except (TypeError, ValueError):
                raise CloseConnection(Close.DECODE_ERROR, "user_ids must be snowflakes") from None
        elif not isinstance(query, str):
            raise CloseConnection(Close.DECODE_ERROR, "query or user_ids is required")
        if type(limit) is not int or limit < 0:
            raise CloseConnection(Close.DECODE_ERROR, "limit must be a non-negative integer")
        if user_ids is None and not query and not self.intents & _GUILD_MEMBERS:
            # Discord: listing every member needs the GUILD_MEMBERS intent.
            raise CloseConnection(Close.INVALID_INTENTS, "requesting all members needs GUILD_MEMBERS")
        for guild_id in guild_ids:
            members: list[dict[str, Any]] = []
            if guild_id in self.guilds:
                with self.hub.resources.session() as session:
                    members = search_members(session, guild_id, query=query, user_ids=user_ids, limit=limit)
            chunks = [members[i:i + CHUNK_SIZE] for i in range(0, len(members), CHUNK_SIZE)] or [[]]
            found = {m["user"]["id"] for m in members}
            for index, chunk in enumerate(chunks):
                body: dict[str, Any] = {"guild_id": str(guild_id), "members": chunk, "chunk_index": index,
                                        "chunk_count": len(chunks)}
                if nonce is not None:
                    body["nonce"] = nonce
                if user_ids is not None and index == len(chunks) - 1:
                    body["not_found"] = [str(u) for u in user_ids if str(u) not in found]
                self._dispatch("GUILD_MEMBERS_CHUNK", orjson.dumps(body), None, None)

    # -- dispatch ----------------------------------------------------------------------------------------------

    def offer(self, prepared: PreparedEvent) -> None:
        """From the hub: an event of one of this session's guilds (or about its user). Never yields."""
        if self.closed or self.handed_over:
            return
        if self.buffer is not None:
            self.buffer.append(prepared)
        elif not self._already_has(prepared):
            self.deliver(prepared)

    def _already_has(self, prepared: PreparedEvent) -> bool:
        floor = self.floor.get(prepared.event.partition) if self.floor else None
        return floor is not None and self.hub.bus.position_order(prepared.event.position) <= floor

    def deliver(self, prepared: PreparedEvent, *, position: tuple[int, str] | None = None) -> None:
        """Send what this session receives of the event: nothing, the event, or the GUILD_CREATE/DELETE and
        CHANNEL_CREATE/DELETE a change of membership or visibility means for it."""
        event = prepared.event
        partition, pos = position or (event.partition, event.position)
        guild_id, me = event.guild_id, self.user_id
        if prepared.recipients is not None:
            self._deliver_direct(prepared, partition, pos)
            return
        view = prepared.view
        if guild_id not in self.guilds:
            joined = (event.type == "GUILD_MEMBER_ADD" and prepared.member_user_id == me) or (
                event.type == "GUILD_CREATE" and view is not None and view.members.get(me) is not None)
            if joined and self._in_shard(guild_id) and view is not None and view.members.get(me) is not None:
                self.guilds.add(guild_id)
                self.hub.joined(self, guild_id)
                if self.intents & _GUILDS:
                    self._dispatch("GUILD_CREATE", orjson.dumps(view.guild_create(me)), partition, pos)
            return
        if event.type == "GUILD_MEMBER_REMOVE" and prepared.member_user_id == me:
            self.guilds.discard(guild_id)
            self.hub.left(self, guild_id)
            if self.intents & _GUILDS:
                self._dispatch("GUILD_DELETE", orjson.dumps({"id": str(guild_id)}), partition, pos)
            return
        if view is None:
            return
        if event.type in ("GUILD_CREATE", "GUILD_MEMBER_ADD") and prepared.member_user_id in (None, me):
            return  # its own membership, already known
        if self.intents & _GUILDS:
            self._visibility_changes(prepared, partition, pos)
        need = required_intent(event.type, True)
        if need is None or not self.intents & need:
            return
        channel_id = event.channel_id
        if event.type.startswith("CHANNEL_") and event.type != "CHANNEL_PINS_UPDATE":
            before = prepared.before.get(me) if prepared.before is not None else None
            was = before is not None and channel_id in before
            now = view.can_view(me, channel_id)
            if event.type == "CHANNEL_DELETE":
                send = "CHANNEL_DELETE" if (was if before is not None else True) else None
            elif before is not None and not was:
                send = "CHANNEL_CREATE" if now else None
            elif not now:
                send = "CHANNEL_DELETE" if event.type == "CHANNEL_UPDATE" and before is not None else None
            else:
                send = event.type
            if send is not None:
                self._dispatch(send, prepared.data, partition, pos)
            return
        if event.type == "THREAD_CREATE" and "member" in event.data and event.data["member"].get(
                "user_id") != str(me):
            return  # a private thread's THREAD_CREATE for the user added to it
        if event.type in _THREAD_MEMBER_EVENTS:
            if not self._receives_thread_members(event.type, event.data, view, channel_id):
                return
        elif channel_id is not None and not view.can_view(me, channel_id):
            return
        if prepared.thread_viewers is not None and me not in prepared.thread_viewers:
            return  # a private thread's THREAD_DELETE, for those who could see the thread only
        permission = PERMISSION_OF.get(event.type)
        if permission is not None and not view.has_permission(me, permission):
            return
        data = prepared.data
        if event.type in CONTENT_EVENTS and not self.intents & _MESSAGE_CONTENT and not (
                prepared.author_id == me or me in prepared.mention_ids):
            data = prepared.stripped
        self._dispatch(event.type, data, partition, pos)

    def _receives_thread_members(self, type_: str, data: dict, view, channel_id: int | None) -> bool:
        """THREAD_MEMBER_UPDATE goes to the member's own sessions; THREAD_MEMBERS_UPDATE to those who see the
        thread, and without GUILD_MEMBERS only when it adds or removes their own user (who, removed from a
        private thread, no longer sees it but is told)."""
        me = str(self.user_id)
        if type_ == "THREAD_MEMBER_UPDATE":
            return data.get("user_id") == me
        added = {m.get("user_id") for m in data.get("added_members", ())}
        removed = set(data.get("removed_member_ids", ()))
        if me in removed:
            return True
        if not self.intents & _GUILD_MEMBERS and me not in added:
            return False
        return channel_id is None or view.can_view(self.user_id, channel_id)

    def _deliver_direct(self, prepared: PreparedEvent, partition: int | None, position: str | None) -> None:
        """A DM's event, to its two users only (their shard 0), with the DIRECT_MESSAGE* intents. Discord sends no
        channel events for DMs to bots, and never strips a DM's content (MESSAGE_CONTENT does not apply to DMs)."""
        event = prepared.event
        # Discord sends DMs' events to shard 0 only: a sharded bot handles each once.
        if self.user_id not in prepared.recipients or self.shard[0] != 0:
            return
        need = required_intent(event.type, False)
        if need is None or not self.intents & need:
            return
        if event.type.startswith("CHANNEL_") and event.type != "CHANNEL_PINS_UPDATE":
            return
        self._dispatch(event.type, prepared.data, partition, position)

    def _visibility_changes(self, prepared: PreparedEvent, partition: int | None, position: str | None) -> None:
        """Roles, members and overwrites changed what this session may see: CHANNEL_CREATE for the channels it
        now sees, CHANNEL_DELETE for those it no longer does (the event's own channel is handled by it)."""
        if prepared.before is None or self.user_id not in prepared.before:
            return
        me, event = self.user_id, prepared.event
        before, after = prepared.before[me], prepared.view.visible_channels(me)
        for channel_id in sorted(after - before):
            if channel_id != event.channel_id:
                self._dispatch("CHANNEL_CREATE", orjson.dumps(prepared.view.channels[channel_id].json), partition,
                               position)
        for channel_id in sorted(before - after):
            if channel_id != event.channel_id and channel_id in prepared.old_channels:
                self._dispatch("CHANNEL_DELETE", orjson.dumps(prepared.old_channels[channel_id]), partition,
                               position)

    def _dispatch(self, type_: str, data: bytes, partition: int | None, position: str | None) -> None:
        self.seq += 1
        self.pending.append((self.seq, partition, position))
        self.hub.dispatched[type_] += 1
        # The shared ``d`` is spliced in, not serialized again per session.
        self._send(b'{"op":0,"s":%d,"t":"%s","d":%s}' % (self.seq, type_.encode(), data))

    # -- output ------------------------------------------------------------------------------------------------

    def _send(self, frame: bytes) -> None:
        if self.closed:
            return
        self._out.append(frame)
        if len(self._out) > MAX_QUEUED_FRAMES:
            self._out.clear()
            gevent.spawn(self._close, Close.UNKNOWN_ERROR, "too slow to receive; resume")
            return
        if self._writer is None:
            self._writer = gevent.spawn(self._drain)

    def _drain(self) -> None:
        try:
            while self._out and not self.closed:
                self._write(self._out.popleft())
        except (ConnectionClosed, OSError):
            self.closed = True
            self._wake_reader()
        finally:
            self._writer = None

    def _write(self, frame: bytes) -> None:
        if self.compressor is not None:
            self.ws.send(self.compressor.compress(frame) + self.compressor.flush(zlib.Z_SYNC_FLUSH))
        else:
            self.ws.send(frame.decode())

    def _close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        GATEWAY_CLOSES.labels(str(code)).inc()
        # What is queued goes first (an INVALID_SESSION, say), within a bound.
        with gevent.Timeout(2, False):
            while self._writer is not None:
                gevent.sleep(0.01)
            while self._out:
                self._write(self._out.popleft())
        self.closed = True
        try:
            with gevent.Timeout(2, False):
                self.ws.close(reason=code, message=reason)
        except (ConnectionClosed, OSError):
            pass
        self._wake_reader()

    def _wake_reader(self) -> None:
        # simple-websocket's receive() returns only on a message, the client's close, or its timeout: marking the
        # connection down and setting its event makes it raise ConnectionClosed now.
        self.ws.connected = False
        self.ws.event.set()

    # -- saving and handing over -------------------------------------------------------------------------------

    def state(self) -> SavedSession:
        return SavedSession(user_id=self.user_id, intents=self.intents, shard=list(self.shard),
                            guilds=sorted(self.guilds), seq=self.seq, base_seq=self.base_seq,
                            base={str(p): pos for p, pos in self.base.items()},
                            pending=[list(entry) for entry in self.pending])

    def _save(self, *, open_: bool) -> None:
        # Once handed over, a late heartbeat or the end of a replay must not mark the session open again: the
        # RESUME on the other connection would find it busy.
        if self.session_id is not None and not (open_ and self.handed_over):
            self._save_state(self.session_id, self.state(), open_=open_)

    def _save_state(self, session_id: str, saved: SavedSession, *, open_: bool) -> None:
        try:
            self.hub.store.save(session_id, self.owner, saved, open_=open_)
        except Exception:
            # The session then cannot be resumed from another worker; the client identifies again.
            log.exception("gateway: saving session %s failed", session_id)

    def drop(self, reason: str) -> None:
        """Close with 4000 (the client resumes) from outside the connection's greenlets; never yields."""
        gevent.spawn(self._close, Close.UNKNOWN_ERROR, reason)

    def hand_over(self) -> None:
        """Stop serving this session (a RESUME of it arrived on another connection of this worker)."""
        self.handed_over = True
        self.hub.unregister(self)
        self._save(open_=False)
        gevent.spawn(self._close, Close.UNKNOWN_ERROR, "session resumed elsewhere")

    def reconnect_elsewhere(self) -> None:
        """Worker stopping: save the session, then op 7 RECONNECT so the client resumes on another worker."""
        self.handed_over = True
        self.hub.unregister(self)
        if self.session_id is not None:
            self._save(open_=False)
            self._send(_frame(Op.RECONNECT, None))
            # The client closes on RECONNECT; one that does not is closed once it had time to.
            gevent.spawn_later(5, self._close, Close.UNKNOWN_ERROR, "worker stopping; reconnect")
        else:
            self._close(Close.UNKNOWN_ERROR, "worker stopping; reconnect")

    def _finish(self) -> None:
        self.closed = True
        if self.session_id is not None and not self.handed_over:
            self.hub.unregister(self)
            self._save(open_=False)
