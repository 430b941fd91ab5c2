"""How a gevent worker holds its connections: read deadlines, idle keep-alive, and a cap per client address.

gunicorn's gevent worker bounds only the wait for a request's headers (by its ``keepalive`` seconds, the same for
a new connection and an idle one) and nothing else: a body sent one byte every two seconds holds its connection,
its greenlet and its database-free slot for as long as the client likes, and a few clients doing that hold every
slot of ``worker_connections``. Each connection here reads through a ``DeadlineSocket`` that knows what the
connection owes next:

- a request's line and headers within ``REQUEST_HEADER_TIMEOUT`` of the connection's start, or of the request's
  first byte on a kept-alive connection (then the client is answered 408 and disconnected);
- a body at least at ``REQUEST_BODY_MIN_RATE`` after ``REQUEST_BODY_TIMEOUT`` (then the read raises werkzeug's
  ``RequestTimeout``, which the app answers 408, and the connection closes);
- between requests, the next one's first byte within ``KEEPALIVE_TIMEOUT`` (then the connection closes quietly).

A WebSocket upgrade is handed over with no deadline: its protocol has pings of its own and lives for hours.

gunicorn's modules are imported here (never the app's): the gunicorn config imports this after gevent's patch.
"""
from __future__ import annotations

import collections
import contextlib
import json
import ssl
import time
from dataclasses import dataclass

import gevent
from gevent import socket as gevent_socket
from gunicorn.http.body import Body, LengthReader
from gunicorn.http.unreader import IterUnreader
from werkzeug.exceptions import RequestTimeout

#: What a connection may send outside a body before a request's headers are complete: the headers, and the part of
#: the previous request's body the app did not read (gunicorn reads it away before the next request). A client
#: that sends more is disconnected rather than read for as long as it sends.
BYTES_BEFORE_REQUEST_LIMIT = 128 * 1024
#: How long a connection answered 408 keeps reading what its client still sends before it closes.
LINGER_SECONDS = 1.0
#: Bodies of a declared length up to this are read by the worker before the app runs, as a proxy buffers them: a
#: client too slow is then answered 408 with a few bytes, not through the app (which costs a thousand times more
#: when thousands of slow connections reach their deadline together), and the app never waits on a client.
#: Larger bodies (uploads) and chunked ones stream to the app, under the same deadline.
READ_AHEAD_LIMIT = 256 * 1024


@dataclass(frozen=True)
class ReadPolicy:
    header_timeout: float
    body_timeout: float
    body_min_rate: int
    keepalive_timeout: float


class _Phase:
    HEADERS = "headers"  # a request's line and headers, by a fixed deadline
    BODY = "body"  # the app reads the body: by a deadline that grows with what has arrived
    IDLE = "idle"  # after a response: the rest of an unread body, then the next request's first byte
    OPEN = "open"  # handed over (a WebSocket): no deadline


class DeadlineSocket(gevent_socket.socket):
    """A connected gevent socket whose ``recv`` enforces the deadline of the connection's current phase.

    gunicorn reads requests through ``recv`` alone (``SocketUnreader``); ``recv_into`` and the other calls are the
    plain socket's. The worker moves the phase: ``begin_body`` when a request's headers are parsed, ``end_request``
    after its response, ``hand_over`` for an upgrade.
    """

    __slots__ = ("policy", "_phase", "_deadline", "_body_started", "_body_received", "_received_before_request",
                 "_request_started", "_answered", "_expired", "body_timed_out")

    def __init__(self, connected: gevent_socket.socket, policy: ReadPolicy):
        super().__init__(connected.family, connected.type, connected.proto, connected.detach())
        self.policy = policy
        self._expired = False
        self.body_timed_out = False
        self._answered = False
        self._received_before_request = 0
        self._enter_headers(time.monotonic(), started=False)

    def _enter_headers(self, now: float, *, started: bool) -> None:
        self._phase = _Phase.HEADERS
        self._deadline = now + self.policy.header_timeout
        self._request_started = started

    def begin_body(self) -> None:
        self._phase = _Phase.BODY
        self._body_started = time.monotonic()
        self._body_received = 0
        self._received_before_request = 0

    def end_request(self) -> None:
        self._phase = _Phase.IDLE
        self._deadline = time.monotonic() + self.policy.keepalive_timeout
        self._received_before_request = 0
        self._request_started = False
        self._answered = True

    def hand_over(self) -> None:
        self._phase = _Phase.OPEN

    @property
    def is_handed_over(self) -> bool:
        return self._phase == _Phase.OPEN

    @property
    def is_idle(self) -> bool:
        """Between requests: nothing of a request has arrived since the last answer (or since connecting)."""
        return self._phase == _Phase.IDLE or (self._phase == _Phase.HEADERS and not self._request_started)

    def _time_left(self, now: float) -> float | None:
        if self._phase == _Phase.OPEN:
            return None
        if self._phase == _Phase.BODY:
            allowed = self.policy.body_timeout + self._body_received / self.policy.body_min_rate
            return self._body_started + allowed - now
        return self._deadline - now

    def recv(self, *args):
        if self._expired:
            return b""
        now = time.monotonic()
        left = self._time_left(now)
        if left is None:
            return super().recv(*args)
        if left <= 0:
            return self._expire()
        self.settimeout(left)
        try:
            data = super().recv(*args)
        except TimeoutError:
            return self._expire()
        finally:
            self.settimeout(None)
        self._received(data, time.monotonic())
        return data

    def _received(self, data: bytes, now: float) -> None:
        if self._phase == _Phase.BODY:
            self._body_received += len(data)
            return
        if not data:
            return
        self._received_before_request += len(data)
        if self._received_before_request > BYTES_BEFORE_REQUEST_LIMIT:
            self._expired = True
        if self._phase == _Phase.IDLE:
            # The first byte after a response starts the header deadline (the rest of an unread body included).
            self._enter_headers(now, started=True)
        else:
            self._request_started = True

    def _expire(self) -> bytes:
        """The deadline passed: end the connection the way its phase calls for."""
        phase, self._expired = self._phase, True
        if phase == _Phase.BODY:
            self.body_timed_out = True
            raise RequestTimeout("The request body arrived too slowly.")
        # A connection that was answered before may be draining what the app left of a body: close it quietly.
        if phase == _Phase.HEADERS and self._request_started and not self._answered:
            _send_quietly(self, _REQUEST_TIMEOUT)
            self.linger()
        return b""  # gunicorn's parser takes it for the client's disconnection and closes

    def linger(self) -> None:
        """After an answer the client did not wait for: end our side, then read what it is still sending for a
        moment before the close. Closing with its bytes unread makes the kernel reset the connection, which can
        discard the answer before the client reads it. The moment is one in total, however the client sends."""
        with contextlib.suppress(OSError):
            self.shutdown(gevent_socket.SHUT_WR)
            until = time.monotonic() + LINGER_SECONDS
            drained = 0
            while drained < BYTES_BEFORE_REQUEST_LIMIT and (left := until - time.monotonic()) > 0:
                self.settimeout(left)
                if not (data := gevent_socket.socket.recv(self, 65536)):
                    break
                drained += len(data)


def _is_websocket_handshake(req) -> bool:
    """Only a WebSocket handshake (RFC 6455: a GET with ``Upgrade: websocket`` and no body) leaves the deadlines:
    any other ``Upgrade`` header is one a client may add to any request, slow ones included."""
    if req.method != "GET":
        return False
    headers = {name: value for name, value in req.headers}
    return (headers.get("UPGRADE", "").strip().lower() == "websocket"
            and "upgrade" in headers.get("CONNECTION", "").lower()
            and "CONTENT-LENGTH" not in headers and "TRANSFER-ENCODING" not in headers)


def json_answer(status: int, reason: str, body: dict, extra_headers: str = "") -> bytes:
    """A complete HTTP answer in the API's JSON error form, closing the connection."""
    payload = json.dumps(body).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"{extra_headers}Content-Length: {len(payload)}\r\n\r\n")
    return head.encode("latin-1") + payload


_REQUEST_TIMEOUT = json_answer(408, "Request Timeout", {"message": "408: Request Timeout", "code": 0})
_TOO_MANY_CONNECTIONS = json_answer(
    429, "Too Many Requests",
    {"message": "Too many connections from your address.", "code": 0, "retry_after": 1.0, "global": True},
    # discord.py takes a 429 without Via for a Cloudflare ban and gives up instead of waiting.
    "Retry-After: 1\r\nVia: 1.1 chatstore\r\nX-RateLimit-Global: true\r\nX-RateLimit-Scope: global\r\n")


def _read_ahead(req, sock: DeadlineSocket) -> None:
    """Read a small body of declared length now, and give the app a body over the bytes read; a client too slow or
    gone ends the connection (StopIteration: gunicorn closes it) without the app."""
    reader = getattr(req.body, "reader", None)
    if not isinstance(reader, LengthReader) or not 0 < reader.length <= READ_AHEAD_LIMIT:
        return
    if getattr(req, "_expected_100_continue", False):
        return  # the client sends its body only once gunicorn has answered "100 Continue", on the way to the app
    length = reader.length
    try:
        data = req.body.read(length)
    except RequestTimeout:
        _send_quietly(sock, _REQUEST_TIMEOUT)
        sock.linger()
        raise StopIteration() from None
    if len(data) < length:
        raise StopIteration()  # the client left before sending its whole body
    req.body = Body(LengthReader(IterUnreader([data]), length))


def _send_quietly(sock, data: bytes) -> None:
    """Best effort, within a second: the client may be gone or not reading."""
    try:
        sock.settimeout(1.0)
        sock.sendall(data)
    except OSError:
        pass


class ConnectionPolicy:
    """Mixin for gunicorn's ``GeventWorker``: every connection reads through a DeadlineSocket, and a client
    address holds at most ``max_per_address`` connections of this worker (0: no cap). Set ``read_policy`` and
    ``max_per_address`` on the class."""

    read_policy: ReadPolicy
    max_per_address: int = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._connections_by_address: collections.Counter = collections.Counter()
        self._open_sockets: set[DeadlineSocket] = set()

    def handle_exit(self, sig, frame):
        """SIGTERM: stop as gunicorn does, and end the idle keep-alive connections now. Their keep-alive outlives
        the graceful timeout, so waiting for them would hold the worker until it is killed, without its exit
        hook (the relay's hand-over, the snowflake slot's release)."""
        super().handle_exit(sig, frame)
        gevent.spawn(self._close_idle_connections)

    def _close_idle_connections(self) -> None:
        for sock in list(self._open_sockets):
            if sock.is_idle:
                with contextlib.suppress(OSError):
                    # The blocked read returns end-of-stream, and gunicorn closes the connection as a client's.
                    sock.shutdown(gevent_socket.SHUT_RD)

    def timeout_ctx(self):
        # The DeadlineSocket bounds the wait for a request; gunicorn's own bound (its keepalive seconds around
        # reading a request's headers) would cut a request that starts late in a long idle period.
        return contextlib.nullcontext()

    def handle(self, listener, client, addr):
        address = addr[0] if isinstance(addr, tuple) else None  # None for a Unix socket: no cap
        if address is not None and self.max_per_address and \
                self._connections_by_address[address] >= self.max_per_address:
            _send_quietly(client, _TOO_MANY_CONNECTIONS)
            client.close()
            return
        self._connections_by_address[address] += 1
        # A TLS connection keeps its own socket class (and no deadlines): TLS is for the proxy in front to end.
        connection = client if isinstance(client, ssl.SSLSocket) else DeadlineSocket(client, self.read_policy)
        if isinstance(connection, DeadlineSocket):
            self._open_sockets.add(connection)
        try:
            super().handle(listener, connection, addr)
        finally:
            self._open_sockets.discard(connection)
            self._connections_by_address[address] -= 1
            if not self._connections_by_address[address]:
                del self._connections_by_address[address]

    def handle_request(self, listener_name, req, sock, addr):
        if not isinstance(sock, DeadlineSocket):
            return super().handle_request(listener_name, req, sock, addr)
        if _is_websocket_handshake(req):
            sock.hand_over()
        else:
            sock.begin_body()
            _read_ahead(req, sock)
        try:
            handled = super().handle_request(listener_name, req, sock, addr)
        except BaseException:
            if not sock.is_handed_over:
                sock.end_request()
            raise
        finally:
            if sock.body_timed_out:
                sock.linger()  # the app answered 408 while the client still sends its body
        # A WebSocket ends the connection by an exception (flask-sock's StopIteration): returning normally, the
        # request was answered over HTTP (a handshake the app refused), and the connection keeps its deadlines.
        sock.end_request()
        return handled
