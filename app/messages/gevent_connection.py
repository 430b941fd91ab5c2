"""The Cassandra driver's I/O on gevent: the project's own ``Connection`` class.

cassandra-driver 3.30 deprecates its gevent reactor and scylla-driver 3.29.12 removed it, while the default libev
reactor hangs under ``gevent.monkey.patch_all()``. This class keeps the model of the driver's reactor: per
connection a read greenlet and a write greenlet fed by a queue of outgoing frames; per process one greenlet that
fires the driver's timers (request timeouts, speculative executions). It relies only on the ``Connection`` API
that cassandra-driver and scylla-driver share, so either package works.

The timer loop is per process and rebuilt after a fork, rather than kept in class attributes: a loop inherited
from a parent (gunicorn's master) belongs to a hub that no longer runs.
"""
from __future__ import annotations

import logging
import os
import time

import gevent
import gevent.event
import gevent.monkey
import gevent.queue
import gevent.socket
import gevent.ssl
from cassandra.connection import Connection, ConnectionShutdown, Timer, TimerManager

log = logging.getLogger(__name__)

#: The longest the timer greenlet sleeps with nothing scheduled; new timers wake it at once.
_IDLE_WAIT_SECONDS = 60.0


class _TimerLoop:
    """One greenlet that fires the driver's timers for this process."""

    def __init__(self):
        self.pid = os.getpid()
        self._timers = TimerManager()
        self._wakeup = gevent.event.Event()
        self._greenlet = gevent.spawn(self._run)

    @property
    def is_usable(self) -> bool:
        return self.pid == os.getpid() and not self._greenlet.dead

    def add(self, timeout: float, callback) -> Timer:
        timer = Timer(timeout, callback)
        self._timers.add_timer(timer)
        self._wakeup.set()
        return timer

    def _run(self) -> None:
        while True:
            next_end = self._timers.service_timeouts()
            self._wakeup.wait(max(next_end - time.time(), 0) if next_end else _IDLE_WAIT_SECONDS)
            self._wakeup.clear()


_timer_loop: _TimerLoop | None = None


def _current_timer_loop() -> _TimerLoop:
    global _timer_loop
    if _timer_loop is None or not _timer_loop.is_usable:
        _timer_loop = _TimerLoop()
    return _timer_loop


class CooperativeConnection(Connection):
    """A driver connection whose socket I/O and timers run on greenlets of the gevent hub."""

    _socket_impl = gevent.socket
    _ssl_impl = gevent.ssl

    @classmethod
    def initialize_reactor(cls) -> None:
        _current_timer_loop()

    @classmethod
    def handle_fork(cls) -> None:
        global _timer_loop
        _timer_loop = None

    @classmethod
    def create_timer(cls, timeout: float, callback) -> Timer:
        return _current_timer_loop().add(timeout, callback)

    def __init__(self, *args, **kwargs):
        Connection.__init__(self, *args, **kwargs)
        self._write_queue: gevent.queue.Queue = gevent.queue.Queue()
        self._connect_socket()
        self._reader = gevent.spawn(self._read_loop)
        self._writer = gevent.spawn(self._write_loop)
        self._send_options_message()

    def close(self) -> None:
        with self.lock:
            if self.is_closed:
                return
            self.is_closed = True
        log.debug("Closing connection (%s) to %s", id(self), self.endpoint)
        current = gevent.getcurrent()
        for greenlet in (self._reader, self._writer):
            if greenlet is not current:
                greenlet.kill(block=False)
        if self._socket:
            self._socket.close()
        if not self.is_defunct:
            message = f"Connection to {self.endpoint} was closed"
            if self.last_error:
                message += f": {self.last_error}"
            self.error_all_requests(ConnectionShutdown(message))
            # Wake whoever waits for this connection to come up, so nothing waits on a closed one.
            self.connected_event.set()

    def push(self, data: bytes) -> None:
        chunk_size = self.out_buffer_size
        for start in range(0, len(data), chunk_size):
            self._write_queue.put(data[start:start + chunk_size])

    def _write_loop(self) -> None:
        while True:
            frame = self._write_queue.get()
            try:
                self._socket.sendall(frame)
            except OSError as exc:
                log.debug("Send failed on %s: %s", self, exc)
                self.defunct(exc)
                return

    def _read_loop(self) -> None:
        while True:
            try:
                data = self._socket.recv(self.in_buffer_size)
            except OSError as exc:
                log.debug("Receive failed on %s: %s", self, exc)
                self.defunct(exc)
                return
            if not data:
                log.debug("Connection %s closed by the server", self)
                self.close()
                return
            self._iobuf.write(data)
            self.process_io_buffer()


def assert_cooperative(connection_class: type) -> None:
    """Fail fast unless the driver will run cooperatively: our connection class, in a gevent-patched process.

    The driver's own threads (executor, scheduler, heartbeat) and events must be gevent's, or a request waits on
    an OS-level lock while the hub that would complete it never runs.
    """
    if not (isinstance(connection_class, type) and issubclass(connection_class, CooperativeConnection)):
        raise RuntimeError(f"the Cassandra driver must use {CooperativeConnection.__qualname__}, "
                           f"not {connection_class!r}")
    unpatched = [m for m in ("socket", "threading", "time") if not gevent.monkey.is_module_patched(m)]
    if unpatched:
        raise RuntimeError("the Cassandra driver needs gevent.monkey.patch_all() before it starts "
                           f"(not patched: {', '.join(unpatched)})")
