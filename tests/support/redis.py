"""The Redis server for tests: the machine's shared one on 127.0.0.1:6379, and throwaway ones for fault tests.

Redis is required in CI (``CI`` or ``REQUIRE_REDIS`` set): there an unreachable server fails the tests instead of
skipping them. Tests share the server safely by giving every key a unique prefix.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager

import pytest
import redis

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_required() -> bool:
    return bool(os.environ.get("CI") or os.environ.get("REQUIRE_REDIS"))


def redis_reachable(url: str = REDIS_URL) -> str | None:
    """None when the server answers, else why not."""
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
        return None
    except redis.RedisError as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    finally:
        client.close()


def require_redis() -> None:
    problem = redis_reachable()
    if problem is None:
        return
    if redis_required():
        pytest.fail(f"Redis is required here but unreachable at {REDIS_URL}: {problem}")
    pytest.skip(f"Redis unreachable at {REDIS_URL}: {problem}")


def unique_prefix() -> str:
    return f"chatstore-test:{os.getpid()}:{secrets.token_hex(4)}"


def delete_prefixed(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


class ThrowawayRedis:
    """A ``redis-server`` of our own on a free port, stopped and started by its PID.

    Without persistence by default: a restart empties it. ``append_only`` keeps every acknowledged write in an
    append-only file fsynced on each write, so a SIGTERM and a start on the same directory keep the streams.
    :meth:`pause` (SIGSTOP) freezes it with its connections open, as a hung broker: calls time out.
    """

    def __init__(self, port: int, directory, append_only: bool = False):
        self.port = port
        self.directory = directory
        self.append_only = append_only
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen | None = None
        self.paused = False

    def start(self, timeout: float = 10.0) -> None:
        persistence = (["--appendonly", "yes", "--appendfsync", "always"] if self.append_only
                       else ["--appendonly", "no"])
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", *persistence, "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while redis_reachable(self.url) is not None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"throwaway redis-server on port {self.port} did not start")
            time.sleep(0.02)

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        if self.process is None:
            return
        if self.paused:
            self.resume()  # a stopped process would act on the SIGTERM only once continued
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=10)
        self.process = None


@contextmanager
def throwaway_redis(port: int, directory, append_only: bool = False):
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed"
        pytest.fail(message) if redis_required() else pytest.skip(message)
    server = ThrowawayRedis(port, directory, append_only)
    server.start()
    try:
        yield server
    finally:
        server.stop()
