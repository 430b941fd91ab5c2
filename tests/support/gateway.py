"""A gateway test client over websocket-client: frames decoded as Discord clients decode them."""
from __future__ import annotations

import json
import time
import zlib
from typing import Any

import websocket

ZLIB_SUFFIX = b"\x00\x00\xff\xff"


class Closed(Exception):
    def __init__(self, code: int | None, reason: str):
        super().__init__(f"closed with {code}: {reason}")
        self.code = code
        self.reason = reason


class GatewayClient:
    """One connection. ``compress`` asks for zlib-stream and inflates with one zlib.decompressobj, buffering
    binary frames until one ends with 00 00 ff ff, as discord.py does."""

    def __init__(self, url: str, *, compress: bool = False, query: str = "v=10&encoding=json", timeout: float = 10,
                 answer_heartbeat_requests: bool = True):
        full = f"{url}?{query}" + ("&compress=zlib-stream" if compress else "")
        self.ws = websocket.create_connection(full, timeout=timeout)
        self.compress = compress
        self.inflator = zlib.decompressobj()
        self.buffer = bytearray()
        self.binary_frames = 0
        self.text_frames = 0
        self.sequence: int | None = None
        #: Like a real client, answer the server's op 1 with a heartbeat at once (a test of the timeout does not).
        self.answer_heartbeat_requests = answer_heartbeat_requests
        self.hello = self.receive()

    def send(self, op: int, data: Any) -> None:
        self.ws.send(json.dumps({"op": op, "d": data}))

    def send_raw(self, text: str) -> None:
        self.ws.send(text)

    def receive(self, timeout: float = 10) -> dict:
        self.ws.settimeout(timeout)
        while True:
            try:
                opcode, data = self.ws.recv_data(control_frame=True)
            except websocket.WebSocketConnectionClosedException:
                raise Closed(None, "connection closed without a close frame") from None
            except websocket.WebSocketTimeoutException:
                raise TimeoutError(f"nothing received in {timeout:.1f} s") from None
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                raise Closed(code, data[2:].decode(errors="replace"))
            if opcode == websocket.ABNF.OPCODE_BINARY:
                self.binary_frames += 1
                self.buffer.extend(data)
                if not self.buffer.endswith(ZLIB_SUFFIX):
                    continue
                text = self.inflator.decompress(bytes(self.buffer)).decode()
                self.buffer.clear()
            elif opcode == websocket.ABNF.OPCODE_TEXT:
                self.text_frames += 1
                text = data.decode()
            else:
                continue
            payload = json.loads(text)
            if payload.get("s") is not None:
                self.sequence = payload["s"]
            if payload["op"] == 1 and self.answer_heartbeat_requests:
                self.send(1, self.sequence)
            return payload

    def identify(self, token: str, intents: int, **extra: Any) -> dict:
        """IDENTIFY and return READY's ``d``."""
        self.send(2, {"token": token, "intents": intents, "properties": {"os": "linux", "browser": "t",
                                                                         "device": "t"}, **extra})
        ready = self.receive()
        assert ready["t"] == "READY", ready
        return ready["d"]

    def dispatches(self, count: int, timeout: float = 10) -> list[dict]:
        """The next ``count`` dispatches (heartbeat ACKs and op 1 requests skipped)."""
        found, deadline = [], time.monotonic() + timeout
        while len(found) < count:
            payload = self.receive(max(0.1, deadline - time.monotonic()))
            if payload["op"] == 0:
                found.append(payload)
        return found

    def until(self, predicate, timeout: float = 10) -> dict:
        """The first dispatch matching ``predicate``; dispatches before it are kept in ``skipped``."""
        self.skipped: list[dict] = []
        deadline = time.monotonic() + timeout
        while True:
            payload = self.receive(max(0.1, deadline - time.monotonic()))
            if payload["op"] == 0 and predicate(payload):
                return payload
            self.skipped.append(payload)

    def close_code(self, timeout: float = 10) -> int | None:
        """Read until the server closes; its close code."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self.receive(max(0.1, deadline - time.monotonic()))
        except Closed as closed:
            return closed.code

    def close(self) -> None:
        self.ws.close()


class CuttableProxy:
    """A TCP proxy in this (gevent) process in front of a server, whose connections the test can cut at once, as
    a network failure would: both sides see the connection end without a WebSocket close frame."""

    def __init__(self, listen_port: int, target_port: int, host: str = "127.0.0.1"):
        from gevent.server import StreamServer

        self.target = (host, target_port)
        self.pairs: list[tuple] = []
        self.server = StreamServer((host, listen_port), self._serve)
        self.server.start()

    def _serve(self, client, _address) -> None:
        import gevent
        from gevent import socket

        upstream = socket.create_connection(self.target)
        pair = (client, upstream)
        self.pairs.append(pair)
        pumps = [gevent.spawn(_pump, client, upstream), gevent.spawn(_pump, upstream, client)]
        gevent.joinall(pumps, count=1)
        if pair in self.pairs:
            self.pairs.remove(pair)
        for sock in pair:
            sock.close()
        gevent.killall(pumps)

    def cut(self) -> int:
        """Cut every open connection; how many there were."""
        import socket as stdlib_socket

        pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for sock in pair:
                try:
                    sock.shutdown(stdlib_socket.SHUT_RDWR)
                except OSError:
                    pass
        return len(pairs)

    def stop(self) -> None:
        self.cut()
        self.server.stop()


def _pump(source, destination) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                return
            destination.sendall(data)
    except OSError:
        return
