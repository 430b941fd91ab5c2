"""Rate limits the way Discord applies them and discord.py expects them.

Discord's rules: https://discord.com/developers/docs/topics/rate-limits.

Every request of a user counts against the user's global bucket (``rate_limit_global_per_second``) and against
one route bucket, keyed by the bucket, the route's major parameter (``channel_id`` or ``guild_id``) and the
user. Each route names its bucket where it is declared (``rate_limit`` of ``app.api.route``): sending, deleting
and reacting share buckets of their own limits; every other route has a bucket of its own with
``rate_limit_default``. Requests without a user (the public OpenAPI document) count against a global bucket
of the client's address.

Responses of a limited route carry ``X-RateLimit-Limit``, ``-Remaining``, ``-Reset``, ``-Reset-After`` and
``-Bucket`` always together: discord.py reads ``-Reset`` when ``-Reset-After`` is missing and fails without it.
A refused request gets Discord's 429: a JSON body with ``retry_after`` in seconds and ``global``, and a ``Via``
header, without which discord.py takes the 429 for a Cloudflare ban and gives up instead of waiting.

Counts live in Redis when a storage URL is configured (shared by every worker and host); otherwise in a table in
shared memory that the workers of one gunicorn master share (app/ratelimit_shared.py; the master names its file in
``RATE_LIMIT_TABLE_ENVIRONMENT``), or in each process's own memory with ``memory://``. When the storage fails,
requests pass unlimited for a moment rather than fail: the limits protect the service, they are not worth an
outage.

Invalid requests (answered 401, 403 or 429) are counted per client address, as Discord counts them: over
``rate_limit_invalid`` (10,000 per 10 minutes) or ``rate_limit_invalid_burst`` (a short window), every request
of the address is answered 429 until that window ends, before it costs a token lookup.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Flask, Response, current_app, g, request
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import RedisStorage, Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from app.ids import InvalidSnowflake, parse_snowflake
from app.observability.metrics import RATE_LIMITED
from app.ratelimit_shared import SharedMemoryStorage
from config import Settings

if TYPE_CHECKING:
    from app.api.routes import RouteSpec

log = logging.getLogger(__name__)

#: Buckets that several routes share, by name, and the setting that holds each one's limit.
SHARED_BUCKETS: dict[str, str] = {
    "messages.create": "rate_limit_message_create",
    "messages.delete": "rate_limit_message_delete",
    "reactions": "rate_limit_reactions",
    "webhooks.execute": "rate_limit_webhook_execute",
}
#: The ``rate_limit`` of a route with a bucket of its own, named after its endpoint, of ``rate_limit_default``.
OWN_BUCKET = "own"
MAJOR_PARAMETERS = ("channel_id", "guild_id", "webhook_id")
#: How long requests pass unlimited after the storage failed, so a dead Redis costs one timeout, not one each.
STORAGE_RETRY_INTERVAL = 5.0
#: Redis answers on the same network in well under a millisecond; waiting longer only stalls requests.
REDIS_TIMEOUT = 0.25
VIA = "1.1 chatstore"
#: The environment variable in which the gunicorn master names the shared table of its workers' counts.
RATE_LIMIT_TABLE_ENVIRONMENT = "CHATSTORE_RATE_LIMIT_TABLE"
#: Answers that make a request invalid, as Discord counts them.
INVALID_STATUSES = frozenset({401, 403, 429})
INVALID_NAMESPACE = "invalid"


class _MillisecondRedisStorage(RedisStorage):
    """Redis storage whose window expiry has millisecond precision.

    The stock storage reads the expiry with TTL, rounded to whole seconds: a window with 0.4 s left would
    report 0, and a client told ``retry_after: 0`` retries at once and spends its attempts.
    """

    def get_expiry(self, key: str) -> float:
        remaining_ms = self.get_connection(True).pttl(self.prefixed_key(key))
        return time.time() + max(remaining_ms, 0) / 1000


def parse_rate(text: str) -> RateLimitItem:
    """``"COUNT/SECONDS"`` (validated by config) as a fixed window of SECONDS seconds."""
    count, seconds = text.split("/")
    return RateLimitItemPerSecond(int(count), int(seconds))


def bucket_hash(name: str) -> str:
    """An opaque, stable bucket id, the same in every worker (Discord's are opaque too)."""
    return hashlib.blake2s(name.encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class BucketState:
    name: str
    limit: int
    remaining: int
    reset: float  # epoch seconds

    def headers(self, now: float) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": f"{self.reset:.3f}",
            "X-RateLimit-Reset-After": f"{max(self.reset - now, 0.0):.3f}",
            "X-RateLimit-Bucket": bucket_hash(self.name),
        }


@dataclass(frozen=True)
class Refusal:
    retry_after: float
    is_global: bool


class RateLimiter:
    """Counts requests in fixed windows; one per app, its storage built lazily in each worker process."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.global_limit = RateLimitItemPerSecond(settings.rate_limit_global_per_second, 1)
        self.default_limit = parse_rate(settings.rate_limit_default)
        self.shared_limits = {bucket: parse_rate(getattr(settings, attribute))
                              for bucket, attribute in SHARED_BUCKETS.items()}
        self.invalid_limits = (parse_rate(settings.rate_limit_invalid), parse_rate(settings.rate_limit_invalid_burst))
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._storage: Storage | None = None
        self._strategy: FixedWindowRateLimiter | None = None
        self._skip_until = 0.0

    def _limiter(self) -> FixedWindowRateLimiter:
        # The memory storage runs a timer, and Redis connections must not be shared with a forked parent.
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._storage = self._make_storage()
                    self._strategy = FixedWindowRateLimiter(self._storage)
                    self._pid = os.getpid()
        return self._strategy

    def _make_storage(self) -> Storage:
        url = self.settings.rate_limit_storage_url
        if not url:
            table = os.environ.get(RATE_LIMIT_TABLE_ENVIRONMENT)
            return SharedMemoryStorage(Path(table) if table else None)
        if url.startswith(("redis://", "rediss://", "redis+unix://")):
            return _MillisecondRedisStorage(url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT)
        return storage_from_string(url)

    def _storage_call(self, call):
        """``call(limiter)``, or None when the storage failed (then nothing is limited for a moment, logged)."""
        if time.monotonic() < self._skip_until:
            return None
        limiter = self._limiter()
        try:
            return call(limiter)
        except self._storage.base_exceptions as exc:
            self._skip_until = time.monotonic() + STORAGE_RETRY_INTERVAL
            log.warning("rate limit storage failed, not limiting for %.0fs: %s", STORAGE_RETRY_INTERVAL, exc)
            return None

    def invalid_refusal(self, address: str) -> Refusal | None:
        """A Refusal when ``address`` is over a limit of invalid requests (nothing is counted)."""
        def over(limiter: FixedWindowRateLimiter) -> Refusal | None:
            for item in self.invalid_limits:
                if not limiter.test(item, INVALID_NAMESPACE, address):
                    reset = limiter.get_window_stats(item, INVALID_NAMESPACE, address).reset_time
                    return Refusal(retry_after=max(reset - time.time(), 0.001), is_global=True)
            return None
        return self._storage_call(over)

    def count_invalid(self, address: str) -> None:
        """Count an invalid request of ``address`` in every window of invalid requests."""
        def hit(limiter: FixedWindowRateLimiter) -> None:
            for item in self.invalid_limits:
                limiter.hit(item, INVALID_NAMESPACE, address)
        self._storage_call(hit)

    def route_bucket(self, route: RouteSpec) -> tuple[str, RateLimitItem]:
        """The name and limit of the bucket a route declared."""
        if route.rate_limit == OWN_BUCKET:
            return route.endpoint, self.default_limit
        return route.rate_limit, self.shared_limits[route.rate_limit]

    def check(self, route: RouteSpec, view_args: dict, identity: str,
              authenticated: bool) -> tuple[BucketState | None, Refusal | None]:
        """Count one request; return the route bucket's state (for headers) and a Refusal when over a limit.

        Errors of the storage pass the request unlimited (logged), for ``STORAGE_RETRY_INTERVAL`` seconds.
        """
        checked = self._storage_call(lambda limiter: self._check(limiter, route, view_args, identity, authenticated))
        return (None, None) if checked is None else checked

    def _check(self, limiter: FixedWindowRateLimiter, route: RouteSpec, view_args: dict, identity: str,
               authenticated: bool) -> tuple[BucketState | None, Refusal | None]:
        if not limiter.hit(self.global_limit, "global", identity):
            reset = limiter.get_window_stats(self.global_limit, "global", identity).reset_time
            return None, Refusal(retry_after=max(reset - time.time(), 0.001), is_global=True)
        if "token" in view_args and "webhook_id" in view_args:
            # A webhook's token routes (no user): their buckets are the webhook's with that token, whoever calls.
            # The token is part of the key, as Discord counts it in the major parameter: a webhook's id is public
            # (every message it sends names it), and wrong tokens must not spend the right one's requests.
            identity = "webhook:" + hashlib.sha256(str(view_args["token"]).encode()).hexdigest()[:32]
            authenticated = True
        if not authenticated:
            return None, None
        major = _major_parameter(view_args)
        if major is None:
            return None, None
        bucket, item = self.route_bucket(route)
        allowed = limiter.hit(item, bucket, major, identity)
        stats = limiter.get_window_stats(item, bucket, major, identity)
        state = BucketState(name=bucket, limit=item.amount, remaining=stats.remaining, reset=stats.reset_time)
        if allowed:
            return state, None
        return state, Refusal(retry_after=max(stats.reset_time - time.time(), 0.001), is_global=False)


def _major_parameter(view_args: dict) -> str | None:
    """The channel or guild id of the path ("" for routes without one); None when it is no snowflake, since
    such a request is refused with 400 anyway and must not create a counter per garbage value. Written the one
    way, so that leading zeros do not make another counter for the same channel."""
    for name in MAJOR_PARAMETERS:
        if name in view_args:
            try:
                return str(parse_snowflake(view_args[name]))
            except InvalidSnowflake:
                return None
    return ""


def _limiter() -> RateLimiter | None:
    return current_app.extensions.get("ratelimit")


def enforce_rate_limits(route: RouteSpec | None) -> Response | None:
    """before_request, after authentication, with the spec of the route the request matched (None when it
    matched none): count the request; answer 429 when it is over a limit."""
    limiter = _limiter()
    if limiter is None or route is None:
        return None
    user = g.get("user")
    identity = f"user:{user.id}" if user is not None else f"ip:{request.remote_addr}"
    state, refusal = limiter.check(route, request.view_args or {}, identity, authenticated=user is not None)
    g.rate_limit_state = state
    if refusal is None:
        return None
    return _refused(refusal, "You are being rate limited.")


def refuse_blocked_address() -> Response | None:
    """before_request, first of all: answer 429 to an address over a limit of invalid requests."""
    limiter = _limiter()
    if limiter is None:
        return None
    refusal = limiter.invalid_refusal(request.remote_addr or "")
    if refusal is None:
        return None
    return _refused(refusal, "You are being blocked from accessing the API temporarily due to exceeding its rate "
                             "limits with invalid requests.")


def count_invalid_request(response: Response) -> Response:
    """after_request: count an answer of 401, 403 or 429 against the client's address."""
    limiter = _limiter()
    if limiter is not None and response.status_code in INVALID_STATUSES:
        limiter.count_invalid(request.remote_addr or "")
    return response


def _refused(refusal: Refusal, message: str) -> Response:
    RATE_LIMITED.inc()
    response = current_app.json.response({"message": message, "code": 0,
                                          "retry_after": round(refusal.retry_after, 3), "global": refusal.is_global})
    response.status_code = 429
    response.headers["Retry-After"] = str(max(1, math.ceil(refusal.retry_after)))
    response.headers["Via"] = VIA
    response.headers["X-RateLimit-Scope"] = "global" if refusal.is_global else "user"
    if refusal.is_global:
        response.headers["X-RateLimit-Global"] = "true"
    return response


def add_rate_limit_headers(response: Response) -> Response:
    """after_request: the route bucket's headers, on every answer of a limited route (429s included)."""
    state: BucketState | None = g.pop("rate_limit_state", None)
    if state is not None:
        response.headers.update(state.headers(time.time()))
    return response


def init_app(app: Flask, settings: Settings) -> None:
    if settings.rate_limit_enabled:
        app.extensions["ratelimit"] = RateLimiter(settings)
