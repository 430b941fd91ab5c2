"""Settings: read once from the environment into a frozen object; one error lists every bad value.

Only the standard library is imported here, because the gunicorn config (which must not import the app or
any driver before gevent has patched) reads these settings too.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE_PATH = PROJECT_ROOT / "var" / "chatstore.sqlite3"

MESSAGE_STORES = ("sql", "scylla", "dual")
EVENT_BUSES = ("sql", "redis", "off")
EVENT_RELAYS = ("worker", "process", "off")
CONSISTENCY_LEVELS = ("ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM", "LOCAL_ONE")


class SettingsError(ValueError):
    def __init__(self, problems: list[str]):
        super().__init__("invalid settings:\n  " + "\n  ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Settings:
    database_url: str = f"sqlite:///{DEFAULT_SQLITE_PATH}"
    message_store: str = "sql"
    bind: str = "127.0.0.1:8080"
    web_workers: int = 2
    worker_connections: int = 1000
    db_pool_size: int = 10
    db_pool_timeout: float = 5.0
    db_statement_timeout_ms: int = 5000
    scylla_hosts: tuple[str, ...] = ()
    scylla_port: int = 9042
    scylla_keyspace: str = "chatstore"
    scylla_local_dc: str = "datacenter1"
    scylla_consistency: str = "LOCAL_QUORUM"
    scylla_replication_factor: int = 3
    scylla_request_timeout: float = 2.0
    scylla_connect_timeout: float = 5.0
    dual_primary: str = "sql"
    dual_secondary: str = "scylla"
    nonce_ttl_seconds: int = 600
    max_pins_per_channel: int = 250
    application_name: str = "chatstore"
    log_level: str = "INFO"
    # Rate limits the way Discord applies them (https://discord.com/developers/docs/topics/rate-limits).
    # Route limits are "COUNT/SECONDS" per user and per major parameter (channel or guild); "" for the storage
    # means in-process memory, one count per worker.
    rate_limit_enabled: bool = True
    rate_limit_storage_url: str = ""
    rate_limit_global_per_second: int = 50
    rate_limit_message_create: str = "5/5"
    rate_limit_message_delete: str = "5/1"
    rate_limit_reactions: str = "4/1"
    rate_limit_default: str = "50/1"
    metrics_enabled: bool = True
    hub_blocking_threshold_ms: int = 100
    readiness_timeout: float = 1.0
    graceful_timeout: float = 20.0
    # Identical history reads in a worker share their work: concurrent ones one store call
    # (app/messages/coalescing.py), later ones a page kept until the channel changes (app/read_cache.py).
    coalesce_reads: bool = True
    # How many pages of messages each worker keeps (0: none).
    read_cache_pages: int = 256
    # The durable event stream (app/events): which bus, how many partitions (a guild's events all land in one),
    # how long events are kept (the window in which a gateway session can resume; see retention_of), where the
    # relay from the outbox runs, and the Redis it uses when EVENT_BUS=redis.
    event_bus: str = "sql"
    event_partitions: int = 16
    event_retention: str = "24h"
    event_relay: str = "worker"
    event_redis_prefix: str = "chatstore:events"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Traces (app/observability/tracing.py), under OpenTelemetry's own variable names: off while the endpoint is
    # empty; a sampled share of new traces (a caller's sampled trace is always continued).
    otel_exporter_otlp_endpoint: str = ""
    otel_traces_sampler_arg: float = 1.0
    otel_service_name: str = "chatstore"

    def replace(self, **changes) -> Settings:
        return dataclasses.replace(self, **changes)

    @property
    def events_enabled(self) -> bool:
        return self.event_bus != "off"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value) or value <= 0:
        raise ValueError("must be a positive number")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be zero or a positive integer")
    return value


def _boolean(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _rate(raw: str) -> str:
    count, slash, seconds = raw.partition("/")
    if not (slash and count.strip().isdigit() and seconds.strip().isdigit()
            and int(count) > 0 and int(seconds) > 0):
        raise ValueError("must be COUNT/SECONDS with positive integers, e.g. 5/5")
    return f"{int(count)}/{int(seconds)}"


def _rate_limit_storage(raw: str) -> str:
    if not raw.startswith(("memory://", "redis://", "rediss://", "redis+unix://")):
        raise ValueError("must be a memory://, redis:// or rediss:// URL")
    return raw


_RETENTION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def retention_of(raw: str) -> tuple[int | None, int | None]:
    """``(max_age_seconds, max_events)`` of an EVENT_RETENTION value; exactly one is set.

    ``"24h"`` (also ``s``, ``m``, ``d``) keeps events by age; a bare number such as ``"1000000"`` keeps that many
    events per partition.
    """
    text = raw.strip().lower()
    if text.isdigit() and int(text) > 0:
        return None, int(text)
    amount, unit = text[:-1], text[-1:]
    if unit in _RETENTION_UNITS and amount.isdigit() and int(amount) > 0:
        return int(amount) * _RETENTION_UNITS[unit], None
    raise ValueError("must be an age such as 24h, 90m, 7d, 3600s, or a positive number of events per partition")


def _retention(raw: str) -> str:
    retention_of(raw)
    return raw.strip().lower()


def _redis_url(raw: str) -> str:
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must be a redis://, rediss:// or unix:// URL")
    return raw


def _http_url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL (OTLP over HTTP)")
    return raw


def _ratio(raw: str) -> float:
    value = float(raw)
    if not 0 <= value <= 1:
        raise ValueError("must be a number from 0 to 1")
    return value


def _key_prefix(raw: str) -> str:
    if not raw or any(character.isspace() or character in "{}" for character in raw):
        raise ValueError("must be non-empty, without spaces or braces (braces are the partitions' hash tags)")
    return raw


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return raw
    return parse


def _hosts(raw: str) -> tuple[str, ...]:
    hosts = tuple(h.strip() for h in raw.split(",") if h.strip())
    if not hosts:
        raise ValueError("must name at least one host")
    return hosts


def _bind(raw: str) -> str:
    host, sep, port = raw.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("must be HOST:PORT")
    return raw


def _database_url(raw: str) -> str:
    if not raw.startswith(("sqlite://", "postgresql://", "postgresql+psycopg2://", "postgres://")):
        raise ValueError("must be a sqlite:// or postgresql:// URL")
    # psycopg2 (made cooperative by psycogreen) is the driver; SQLAlchemy 2.1 would pick psycopg 3 by default.
    for prefix in ("postgres://", "postgresql://"):
        if raw.startswith(prefix):
            return "postgresql+psycopg2://" + raw[len(prefix):]
    return raw


#: Environment variable -> (field, parser).
_ENVIRONMENT: dict[str, tuple[str, Callable[[str], object]]] = {
    "DATABASE_URL": ("database_url", _database_url),
    "MESSAGE_STORE": ("message_store", _choice(*MESSAGE_STORES)),
    "BIND": ("bind", _bind),
    "WEB_WORKERS": ("web_workers", _positive_int),
    "WORKER_CONNECTIONS": ("worker_connections", _positive_int),
    "DB_POOL_SIZE": ("db_pool_size", _positive_int),
    "DB_POOL_TIMEOUT": ("db_pool_timeout", _positive_float),
    "DB_STATEMENT_TIMEOUT_MS": ("db_statement_timeout_ms", _positive_int),
    "SCYLLA_HOSTS": ("scylla_hosts", _hosts),
    "SCYLLA_PORT": ("scylla_port", _positive_int),
    "SCYLLA_KEYSPACE": ("scylla_keyspace", str),
    "SCYLLA_LOCAL_DC": ("scylla_local_dc", str),
    "SCYLLA_CONSISTENCY": ("scylla_consistency", _choice(*CONSISTENCY_LEVELS)),
    "SCYLLA_REPLICATION_FACTOR": ("scylla_replication_factor", _positive_int),
    "SCYLLA_REQUEST_TIMEOUT": ("scylla_request_timeout", _positive_float),
    "SCYLLA_CONNECT_TIMEOUT": ("scylla_connect_timeout", _positive_float),
    "DUAL_PRIMARY": ("dual_primary", _choice("sql", "scylla")),
    "DUAL_SECONDARY": ("dual_secondary", _choice("sql", "scylla")),
    "NONCE_TTL_SECONDS": ("nonce_ttl_seconds", _positive_int),
    "MAX_PINS_PER_CHANNEL": ("max_pins_per_channel", _positive_int),
    "LOG_LEVEL": ("log_level", lambda raw: _choice("DEBUG", "INFO", "WARNING", "ERROR")(raw.upper())),
    "RATE_LIMIT_ENABLED": ("rate_limit_enabled", _boolean),
    # REDIS_URL is the conventional name; RATE_LIMIT_STORAGE_URL, read after it, wins when both are set.
    "REDIS_URL": ("rate_limit_storage_url", _rate_limit_storage),
    "RATE_LIMIT_STORAGE_URL": ("rate_limit_storage_url", _rate_limit_storage),
    "RATE_LIMIT_GLOBAL_PER_SECOND": ("rate_limit_global_per_second", _positive_int),
    "RATE_LIMIT_MESSAGE_CREATE": ("rate_limit_message_create", _rate),
    "RATE_LIMIT_MESSAGE_DELETE": ("rate_limit_message_delete", _rate),
    "RATE_LIMIT_REACTIONS": ("rate_limit_reactions", _rate),
    "RATE_LIMIT_DEFAULT": ("rate_limit_default", _rate),
    "METRICS_ENABLED": ("metrics_enabled", _boolean),
    # 0 turns gevent's monitor thread off.
    "HUB_BLOCKING_THRESHOLD_MS": ("hub_blocking_threshold_ms", _non_negative_int),
    "READINESS_TIMEOUT": ("readiness_timeout", _positive_float),
    "GRACEFUL_TIMEOUT": ("graceful_timeout", _positive_float),
    "COALESCE_READS": ("coalesce_reads", _boolean),
    "READ_CACHE_PAGES": ("read_cache_pages", _non_negative_int),
    "EVENT_BUS": ("event_bus", _choice(*EVENT_BUSES)),
    "EVENT_PARTITIONS": ("event_partitions", _positive_int),
    "EVENT_RETENTION": ("event_retention", _retention),
    "EVENT_RELAY": ("event_relay", _choice(*EVENT_RELAYS)),
    "EVENT_REDIS_PREFIX": ("event_redis_prefix", _key_prefix),
    "OTEL_EXPORTER_OTLP_ENDPOINT": ("otel_exporter_otlp_endpoint", _http_url),
    "OTEL_TRACES_SAMPLER_ARG": ("otel_traces_sampler_arg", _ratio),
    "OTEL_SERVICE_NAME": ("otel_service_name", str),
}

#: Environment variables that set a second field too, when their value suits it: REDIS_URL names the Redis of the
#: rate limits (above, which also accept memory://) and of the event stream. The first table reports bad values.
_ALSO = {
    "REDIS_URL": ("redis_url", _redis_url),
}


#: Environment variable -> what it means, one line each, for docs/configuration.md (``make docs`` renders the
#: table from this, ``_ENVIRONMENT`` and the defaults of ``Settings``). Kept beside ``_ENVIRONMENT`` rather than as
#: field metadata because an operator sets variables, not fields (REDIS_URL and RATE_LIMIT_STORAGE_URL share one).
DESCRIPTIONS: dict[str, str] = {
    "DATABASE_URL": "Metadata database (and messages with `MESSAGE_STORE=sql`): `sqlite:///PATH` or "
                    "`postgresql://USER:PASS@HOST:PORT/DB`, always driven by psycopg2, made cooperative under gevent",
    "MESSAGE_STORE": "Where messages live: `sql` (the database above), `scylla`, or `dual` (while moving between "
                     "the two)",
    "BIND": "`HOST:PORT` gunicorn listens on",
    "WEB_WORKERS": "gunicorn worker processes",
    "WORKER_CONNECTIONS": "Concurrent connections (greenlets) per worker, idle keep-alive ones included",
    "DB_POOL_SIZE": "PostgreSQL connections per worker (as many again may overflow); SQLite always uses one per "
                    "process",
    "DB_POOL_TIMEOUT": "Seconds a request waits for a pooled connection before answering 503 with `Retry-After`",
    "DB_STATEMENT_TIMEOUT_MS": "PostgreSQL `statement_timeout` of every connection",
    "SCYLLA_HOSTS": "Comma-separated contact points; required with `MESSAGE_STORE=scylla` or `dual`",
    "SCYLLA_PORT": "CQL port",
    "SCYLLA_KEYSPACE": "Keyspace of the message tables",
    "SCYLLA_LOCAL_DC": "Datacenter this service runs in; requests stay in it",
    "SCYLLA_CONSISTENCY": "Consistency level of reads and writes",
    "SCYLLA_REPLICATION_FACTOR": "Used when `flask scylla migrate` creates the keyspace",
    "SCYLLA_REQUEST_TIMEOUT": "Seconds per Scylla request before the store answers unavailable (503)",
    "SCYLLA_CONNECT_TIMEOUT": "Seconds to connect to a Scylla node",
    "DUAL_PRIMARY": "With `MESSAGE_STORE=dual`: the store reads come from and writes go to first (`sql` or "
                    "`scylla`)",
    "DUAL_SECONDARY": "With `MESSAGE_STORE=dual`: the store every write is copied to; must differ from "
                      "`DUAL_PRIMARY`",
    "NONCE_TTL_SECONDS": "How long a message `nonce` with `enforce_nonce` deduplicates retries",
    "MAX_PINS_PER_CHANNEL": "Pins allowed per channel (Discord's current limit)",
    "LOG_LEVEL": "`DEBUG`, `INFO`, `WARNING` or `ERROR`; logs are JSON lines on stderr, and `WARNING` drops the "
                 "access lines",
    "RATE_LIMIT_ENABLED": "Discord-style rate limits with `X-RateLimit-*` headers and 429s; `false` turns limits "
                          "and their headers off",
    "REDIS_URL": "`redis://host:6379/0`: the Redis of the event stream (`EVENT_BUS=redis`; default "
                 "`redis://127.0.0.1:6379/0`) and, when set, of the rate limits: counts shared by every worker and "
                 "host. Unset, each worker counts in its own memory, so with N workers a client may get up to N "
                 "times a limit",
    "RATE_LIMIT_STORAGE_URL": "The same as `REDIS_URL` (`memory://`, `redis://` or `rediss://`); wins when both "
                              "are set",
    "RATE_LIMIT_GLOBAL_PER_SECOND": "Requests per second per user across all routes (per address without a token)",
    "RATE_LIMIT_MESSAGE_CREATE": "`COUNT/SECONDS` per user and channel for sending messages",
    "RATE_LIMIT_MESSAGE_DELETE": "The same, for deleting one message",
    "RATE_LIMIT_REACTIONS": "The same, for every reaction route (one shared bucket)",
    "RATE_LIMIT_DEFAULT": "The same, for every other route (a bucket of its own each)",
    "METRICS_ENABLED": "Prometheus metrics of requests, the database pool and the message store; `false` removes "
                       "`/metrics` and the instrumentation",
    "HUB_BLOCKING_THRESHOLD_MS": "Log a warning when a worker's gevent hub is blocked longer than this; `0` turns "
                                 "the watch off",
    "READINESS_TIMEOUT": "Seconds `/readyz` gives each backing store",
    "GRACEFUL_TIMEOUT": "Seconds a stopping worker gets to finish its requests",
    "COALESCE_READS": "Identical history reads in a worker share their work: concurrent ones one store call, later "
                      "ones a page kept until the channel changes",
    "READ_CACHE_PAGES": "Pages of messages each worker keeps in memory (with `COALESCE_READS`); `0` keeps none",
    "EVENT_BUS": "Where the durable event stream lives: `sql` (tables in the database above, no server needed) or "
                 "`redis` (Redis Streams); `off` records no events at all (for measuring their cost)",
    "EVENT_PARTITIONS": "Partitions of the stream; all events of a guild land in one and are ordered there",
    "EVENT_RETENTION": "How long events are kept: an age (`90m`, `24h`, `7d`, `3600s`) or a bare number of events "
                       "per partition; the window in which a gateway session can resume",
    "EVENT_RELAY": "Where the outbox relay runs: `worker` (a greenlet in each gunicorn worker, one active), "
                   "`process` (`flask events relay`), `off`",
    "EVENT_REDIS_PREFIX": "Key prefix of the streams with `EVENT_BUS=redis`",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "OpenTelemetry collector base URL (`http://collector:4318`; OTLP over HTTP, traces "
                                   "sent to `/v1/traces`); empty turns tracing off",
    "OTEL_TRACES_SAMPLER_ARG": "Share of new traces sampled, 0 to 1 (a request whose `traceparent` is sampled is "
                               "always traced)",
    "OTEL_SERVICE_NAME": "`service.name` of the spans",
}


def load_settings(environ: Mapping[str, str] | None = None, **overrides) -> Settings:
    """Build Settings from ``environ`` (default: ``os.environ``); raise SettingsError naming every problem."""
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    problems: list[str] = []
    for name, (attribute, parse) in _ENVIRONMENT.items():
        raw = environ.get(name)
        if raw is None or raw == "":
            continue
        try:
            values[attribute] = parse(raw.strip())
        except ValueError as exc:
            problems.append(f"{name}={raw!r}: {exc}")
    for name, (attribute, parse) in _ALSO.items():
        with contextlib.suppress(ValueError):
            values[attribute] = parse(environ.get(name, "").strip())
    values.update(overrides)
    settings = Settings(**values)
    if settings.message_store in ("scylla", "dual") and not settings.scylla_hosts:
        problems.append(f"SCYLLA_HOSTS: required when MESSAGE_STORE={settings.message_store}")
    if settings.message_store == "dual" and settings.dual_primary == settings.dual_secondary:
        problems.append("DUAL_PRIMARY and DUAL_SECONDARY must name different stores")
    if problems:
        raise SettingsError(problems)
    return settings
