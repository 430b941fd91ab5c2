"""Driving a test cluster that runs in another process: one JSON object per line over a loopback socket.

Requests are ``{"method": ..., "node": index or null, "kwargs": {...}}``; replies ``{"ok": result}`` or
``{"error": message}``. Only the methods in :data:`CLUSTER_METHODS` and :data:`NODE_METHODS` can be called.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

CLUSTER_METHODS = frozenset({"clear_faults", "advance_clock"})
NODE_METHODS = frozenset({"inject", "clear_faults", "start", "stop"})
_PROJECT_ROOT = Path(__file__).resolve().parents[3]


def serve_control(cluster, address: tuple[str, int]):
    """Start the control server for ``cluster``; returns the gevent StreamServer (already listening)."""
    from gevent.server import StreamServer

    def handle(sock, _peer):
        stream = sock.makefile("rwb")
        for line in stream:
            try:
                request = json.loads(line)
                method, node = request["method"], request.get("node")
                allowed = NODE_METHODS if node is not None else CLUSTER_METHODS
                if method not in allowed:
                    raise ValueError(f"unknown control method {method!r}")
                target = cluster.node(node) if node is not None else cluster
                reply = {"ok": getattr(target, method)(**request.get("kwargs", {}))}
            except Exception as exc:  # reported to the caller, who raises it
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            stream.write(json.dumps(reply).encode() + b"\n")
            stream.flush()

    server = StreamServer(address, handle)
    server.start()
    return server


class ControlError(RuntimeError):
    pass


class RemoteCluster:
    """A CqlTestCluster in a subprocess, with the same control methods as the in-process one."""

    def __init__(self, nodes: int = 3, *, first_address: int = 2, startup_timeout: float = 20.0):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.cqlnode", "--nodes", str(nodes),
             "--first-address", str(first_address)],
            cwd=_PROJECT_ROOT, stdout=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        ready = self.process.stdout.readline()
        if not ready:
            self.process.wait(timeout=startup_timeout)
            raise ControlError(f"cqlnode exited with status {self.process.returncode} before starting")
        info = json.loads(ready)
        self.port, self.contact_points = info["port"], info["contact_points"]
        self._socket = socket.create_connection(("127.0.0.1", info["control_port"]), timeout=startup_timeout)
        self._stream = self._socket.makefile("rwb")

    def call(self, method: str, node: int | None = None, **kwargs):
        self._stream.write(json.dumps({"method": method, "node": node, "kwargs": kwargs}).encode() + b"\n")
        self._stream.flush()
        reply = json.loads(self._stream.readline())
        if "error" in reply:
            raise ControlError(reply["error"])
        return reply["ok"]

    def node(self, index: int) -> RemoteNode:
        return RemoteNode(self, index)

    def clear_faults(self) -> None:
        self.call("clear_faults")

    def advance_clock(self, seconds: float) -> None:
        self.call("advance_clock", seconds=seconds)

    def stop(self) -> None:
        self._socket.close()
        self.process.terminate()
        self.process.wait(timeout=10)

    def __enter__(self) -> RemoteCluster:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


class RemoteNode:
    def __init__(self, cluster: RemoteCluster, index: int):
        self.cluster, self.index = cluster, index

    def inject(self, kind: str, *, delay: float = 0.0, times: int | None = None, applies_to: str = "all") -> None:
        self.cluster.call("inject", self.index, kind=kind, delay=delay, times=times, applies_to=applies_to)

    def clear_faults(self) -> None:
        self.cluster.call("clear_faults", self.index)

    def start(self) -> None:
        self.cluster.call("start", self.index)

    def stop(self) -> None:
        self.cluster.call("stop", self.index)
