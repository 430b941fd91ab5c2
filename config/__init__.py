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
DEFAULT_BLOB_DIRECTORY = PROJECT_ROOT / "var" / "attachments"

MESSAGE_STORES = ("sql", "scylla", "dual")
EVENT_BUSES = ("sql", "redis", "off")
EVENT_RELAYS = ("worker", "process", "off")
#: The WSGI environ key by which the app asks the server (config/gunicorn.py) to close the connection after its
#: answer, as when a request body could not be read to its end.
CLOSE_CONNECTION = "chatstore.close_connection"
BLOB_STORES = ("filesystem", "s3")
SEARCH_ENGINES = ("sqlite", "postgres", "elasticsearch", "off")
SEARCH_INDEXERS = ("worker", "process", "off")
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
    # How long a connection may take to send what it owes (config/worker.py): a request's line and headers, from
    # the connection's start or the request's first byte; a body, this long plus its size at the minimum rate;
    # and how long an idle keep-alive connection waits for its next request (beyond aiohttp's 15 s and
    # browsers' 60 s, so clients never reuse a connection the server is closing).
    request_header_timeout: float = 10.0
    request_body_timeout: float = 10.0
    request_body_min_rate: int = 16384
    keepalive_timeout: float = 75.0
    # Connections one client address may hold open in each worker (0: no cap).
    max_connections_per_address: int = 200
    db_pool_size: int = 10
    db_pool_timeout: float = 5.0
    db_statement_timeout_ms: int = 5000
    # The longest a request waits on one answer of PostgreSQL before giving the connection up (503): covers a
    # server that stopped answering without closing its connections, which statement_timeout (enforced by the
    # server) cannot.
    db_response_timeout: float = 7.0
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
    dual_stale_writer_seconds: float = 60.0
    nonce_ttl_seconds: int = 600
    max_pins_per_channel: int = 250
    application_name: str = "chatstore"
    log_level: str = "INFO"
    # Rate limits the way Discord applies them (https://discord.com/developers/docs/topics/rate-limits).
    # Route limits are "COUNT/SECONDS" per user and per major parameter (channel or guild); "" for the storage
    # means memory shared by the workers of one host (app/ratelimit_shared.py).
    rate_limit_enabled: bool = True
    rate_limit_storage_url: str = ""
    rate_limit_global_per_second: int = 50
    rate_limit_message_create: str = "5/5"
    rate_limit_message_delete: str = "5/1"
    rate_limit_reactions: str = "4/1"
    rate_limit_default: str = "50/1"
    # Discord's documented limit of a webhook's executions: 5 per 2 seconds, per webhook whoever calls.
    rate_limit_webhook_execute: str = "5/2"
    # Requests answered 401, 403 or 429, per client address: Discord's 10,000 per 10 minutes, and a short window
    # that slows a token-guessing client down at once. Over either, the address gets 429s until the window ends.
    rate_limit_invalid: str = "10000/600"
    rate_limit_invalid_burst: str = "50/1"
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
    # Attachments (app/blobs): where their bytes live, how large an upload may be, and how their links are signed.
    blob_store: str = "filesystem"
    blob_directory: str = str(DEFAULT_BLOB_DIRECTORY)
    blob_s3_bucket: str = ""
    blob_s3_endpoint_url: str = ""
    blob_s3_region: str = "us-east-1"
    blob_s3_prefix: str = "attachments/"
    max_upload_bytes: int = 25 * 1024 * 1024
    attachment_url_ttl_seconds: int = 24 * 3600
    attachment_signing_key: str = ""
    public_base_url: str = ""
    # The Discord gateway (app/gateway): the URL /gateway/bot hands out ("" means ws:// on the request's host),
    # the heartbeat interval HELLO announces, identifies per user per 24 hours and per 5 seconds, and how long a
    # closed session stays resumable.
    public_gateway_url: str = ""
    gateway_heartbeat_interval_ms: int = 41250
    gateway_session_start_limit: int = 1000
    gateway_max_concurrency: int = 1
    gateway_resume_window_seconds: int = 300
    # Message search (app/search): the engine ("": the database's own kind), where its indexer (a consumer
    # group of the event stream) runs, the SQLite engine's file ("" = beside the SQLite database, or var/ with
    # PostgreSQL) and Elasticsearch's.
    search_engine: str = ""
    search_indexer: str = "worker"
    search_sqlite_path: str = ""
    search_elasticsearch_url: str = "http://127.0.0.1:9200"
    search_elasticsearch_index: str = "chatstore-messages"
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

    @property
    def search_backend(self) -> str:
        """The engine in use: SEARCH_ENGINE, or by default the database's kind (sqlite or postgres)."""
        return self.search_engine or ("sqlite" if self.is_sqlite else "postgres")

    @property
    def search_enabled(self) -> bool:
        """Search is fed by the event stream: without one (EVENT_BUS=off) there is none either."""
        return self.search_engine != "off" and self.events_enabled

    @property
    def search_index_path(self) -> Path:
        """The SQLite search engine's file: SEARCH_SQLITE_PATH, else beside the SQLite database
        (``chatstore.sqlite3`` -> ``chatstore.search.sqlite3``), else var/chatstore.search.sqlite3."""
        if self.search_sqlite_path:
            return Path(self.search_sqlite_path)
        database = self.database_url.partition(":///")[2] if self.is_sqlite else ""
        if database and database != ":memory:":
            path = Path(database)
            return path.with_name(path.stem + ".search" + (path.suffix or ".sqlite3"))
        return DEFAULT_SQLITE_PATH.with_name("chatstore.search.sqlite3")


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


def _http_url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return raw


def _index_name(raw: str) -> str:
    if not raw or raw != raw.lower() or any(c in raw for c in ' "*\\<|,>/?#:') or raw.startswith(("-", "_", "+")):
        raise ValueError("must be a lowercase Elasticsearch index name without spaces or punctuation")
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


def _http_url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return raw.rstrip("/")


def _signing_key(raw: str) -> str:
    if len(raw) < 32:
        raise ValueError("must be at least 32 characters (e.g. `python -c 'import secrets; "
                         "print(secrets.token_hex(32))'`)")
    return raw


def _websocket_url(raw: str) -> str:
    if not raw.startswith(("ws://", "wss://")):
        raise ValueError("must be a ws:// or wss:// URL")
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
    "DB_RESPONSE_TIMEOUT": ("db_response_timeout", _positive_float),
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
    "DUAL_STALE_WRITER_SECONDS": ("dual_stale_writer_seconds", _positive_float),
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
    "RATE_LIMIT_WEBHOOK_EXECUTE": ("rate_limit_webhook_execute", _rate),
    "RATE_LIMIT_INVALID": ("rate_limit_invalid", _rate),
    "RATE_LIMIT_INVALID_BURST": ("rate_limit_invalid_burst", _rate),
    "METRICS_ENABLED": ("metrics_enabled", _boolean),
    # 0 turns gevent's monitor thread off.
    "REQUEST_HEADER_TIMEOUT": ("request_header_timeout", _positive_float),
    "REQUEST_BODY_TIMEOUT": ("request_body_timeout", _positive_float),
    "REQUEST_BODY_MIN_RATE": ("request_body_min_rate", _positive_int),
    "KEEPALIVE_TIMEOUT": ("keepalive_timeout", _positive_float),
    "MAX_CONNECTIONS_PER_ADDRESS": ("max_connections_per_address", _non_negative_int),
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
    "BLOB_STORE": ("blob_store", _choice(*BLOB_STORES)),
    "BLOB_DIRECTORY": ("blob_directory", str),
    "BLOB_S3_BUCKET": ("blob_s3_bucket", str),
    "BLOB_S3_ENDPOINT_URL": ("blob_s3_endpoint_url", _http_url),
    "BLOB_S3_REGION": ("blob_s3_region", str),
    "BLOB_S3_PREFIX": ("blob_s3_prefix", str),
    "MAX_UPLOAD_BYTES": ("max_upload_bytes", _positive_int),
    "ATTACHMENT_URL_TTL_SECONDS": ("attachment_url_ttl_seconds", _positive_int),
    "ATTACHMENT_SIGNING_KEY": ("attachment_signing_key", _signing_key),
    "PUBLIC_BASE_URL": ("public_base_url", _http_url),
    "PUBLIC_GATEWAY_URL": ("public_gateway_url", _websocket_url),
    "GATEWAY_HEARTBEAT_INTERVAL_MS": ("gateway_heartbeat_interval_ms", _positive_int),
    "GATEWAY_SESSION_START_LIMIT": ("gateway_session_start_limit", _positive_int),
    "GATEWAY_MAX_CONCURRENCY": ("gateway_max_concurrency", _positive_int),
    "GATEWAY_RESUME_WINDOW_SECONDS": ("gateway_resume_window_seconds", _positive_int),
    "SEARCH_ENGINE": ("search_engine", _choice(*SEARCH_ENGINES)),
    "SEARCH_INDEXER": ("search_indexer", _choice(*SEARCH_INDEXERS)),
    "SEARCH_SQLITE_PATH": ("search_sqlite_path", str),
    "SEARCH_ELASTICSEARCH_URL": ("search_elasticsearch_url", _http_url),
    "SEARCH_ELASTICSEARCH_INDEX": ("search_elasticsearch_index", _index_name),
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
    "DB_POOL_SIZE": "PostgreSQL connections per worker: up to twice this, opened as requests need them and kept "
                    "open; SQLite always uses one per process",
    "DB_POOL_TIMEOUT": "Seconds a request waits for a pooled connection before answering 503 with `Retry-After`",
    "DB_STATEMENT_TIMEOUT_MS": "PostgreSQL `statement_timeout` of every connection",
    "DB_RESPONSE_TIMEOUT": "Seconds a request waits for one answer of PostgreSQL (a query, a commit, a connect) "
                           "before the connection is dropped and the request answered 503 with `Retry-After`; "
                           "must exceed `DB_STATEMENT_TIMEOUT_MS`. Bounds a database that stopped answering",
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
    "DUAL_STALE_WRITER_SECONDS": "With `MESSAGE_STORE=dual`: a write the write log still counts in flight this long "
                                 "after it began belongs to a process that died, and replay may copy its message. "
                                 "Must exceed the longest a live write can take (its database and store calls' "
                                 "timeouts added up)",
    "NONCE_TTL_SECONDS": "How long a message `nonce` with `enforce_nonce` deduplicates retries",
    "MAX_PINS_PER_CHANNEL": "Pins allowed per channel (Discord's current limit)",
    "LOG_LEVEL": "`DEBUG`, `INFO`, `WARNING` or `ERROR`; logs are JSON lines on stderr, and `WARNING` drops the "
                 "access lines",
    "RATE_LIMIT_ENABLED": "Discord-style rate limits with `X-RateLimit-*` headers and 429s; `false` turns limits "
                          "and their headers off",
    "REDIS_URL": "`redis://host:6379/0`: the Redis of the event stream (`EVENT_BUS=redis`; default "
                 "`redis://127.0.0.1:6379/0`) and, when set, of the rate limits: counts shared by every worker and "
                 "host. Unset, the workers of one host count together in shared memory",
    "RATE_LIMIT_STORAGE_URL": "The same as `REDIS_URL` (`redis://` or `rediss://`), or `memory://` for counts "
                              "in each process's own memory; wins when both are set",
    "RATE_LIMIT_GLOBAL_PER_SECOND": "Requests per second per user across all routes (per address without a token)",
    "RATE_LIMIT_MESSAGE_CREATE": "`COUNT/SECONDS` per user and channel for sending messages",
    "RATE_LIMIT_MESSAGE_DELETE": "The same, for deleting one message",
    "RATE_LIMIT_REACTIONS": "The same, for every reaction route (one shared bucket)",
    "RATE_LIMIT_DEFAULT": "The same, for every other route (a bucket of its own each)",
    "RATE_LIMIT_WEBHOOK_EXECUTE": "`COUNT/SECONDS` per webhook for executing it (`POST /webhooks/{id}/{token}`), "
                                  "whoever calls",
    "RATE_LIMIT_INVALID": "`COUNT/SECONDS` of requests answered 401, 403 or 429 per client address (Discord's "
                          "10,000 per 10 minutes); over it, the address gets 429s until the window ends",
    "RATE_LIMIT_INVALID_BURST": "The same over a short window, so that a client guessing tokens is slowed down at "
                                "once",
    "METRICS_ENABLED": "Prometheus metrics of requests, the database pool and the message store; `false` removes "
                       "`/metrics` and the instrumentation",
    "REQUEST_HEADER_TIMEOUT": "Seconds a client gets to send a request's line and headers, from the connection's "
                              "start or the request's first byte; a client too slow is answered 408 and "
                              "disconnected",
    "REQUEST_BODY_TIMEOUT": "Seconds a client gets to send a request body, plus its size at "
                            "`REQUEST_BODY_MIN_RATE`; a client too slow is answered 408 and disconnected",
    "REQUEST_BODY_MIN_RATE": "Bytes per second a request body must average after `REQUEST_BODY_TIMEOUT`",
    "KEEPALIVE_TIMEOUT": "Seconds an idle keep-alive connection waits for its next request; longer than clients "
                         "keep theirs (aiohttp 15 s, browsers 60 s)",
    "MAX_CONNECTIONS_PER_ADDRESS": "Connections one client address may hold open in each worker; more are "
                                   "answered 429 and closed. `0` for no cap (behind a proxy all clients share "
                                   "its address)",
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
    "BLOB_STORE": "Where attachments' bytes live: `filesystem` (under `BLOB_DIRECTORY`) or `s3` (any "
                  "S3-compatible service through boto3, credentials from boto3's usual chain: `AWS_ACCESS_KEY_ID`, "
                  "`AWS_SECRET_ACCESS_KEY`, a profile or an instance role)",
    "BLOB_DIRECTORY": "With `BLOB_STORE=filesystem`: the directory of the files (one host only)",
    "BLOB_S3_BUCKET": "With `BLOB_STORE=s3`: the bucket; required",
    "BLOB_S3_ENDPOINT_URL": "With `BLOB_STORE=s3`: the endpoint of a service other than AWS (MinIO, Ceph), "
                            "e.g. `http://minio:9000`",
    "BLOB_S3_REGION": "With `BLOB_STORE=s3`: the region",
    "BLOB_S3_PREFIX": "With `BLOB_STORE=s3`: the prefix of every key, so one bucket can serve several services",
    "MAX_UPLOAD_BYTES": "Largest multipart request (all files together), as Discord's 25 MiB; larger ones are "
                        "refused with 413 and code 40005 before their body is read",
    "ATTACHMENT_URL_TTL_SECONDS": "How long a signed attachment link (`ex`, `is`, `hm`) stays valid",
    "ATTACHMENT_SIGNING_KEY": "Secret (32+ characters) that signs attachment links; the same on every host. "
                              "Unset with `BLOB_STORE=filesystem`, a random key is kept in `BLOB_DIRECTORY`; "
                              "required with `BLOB_STORE=s3`",
    "PUBLIC_BASE_URL": "`https://host` under which clients reach this service, for attachment links; unset, "
                       "each request's own host is used",
    "PUBLIC_GATEWAY_URL": "The WebSocket URL `/gateway` and `/gateway/bot` hand out (`wss://...` behind a proxy); "
                          "empty: `ws://` on the host the request named, path `/gateway`",
    "GATEWAY_HEARTBEAT_INTERVAL_MS": "The heartbeat interval HELLO announces; a session silent for longer (plus "
                                     "a margin) is closed with 4009",
    "GATEWAY_SESSION_START_LIMIT": "IDENTIFYs a user may make per 24 hours (`session_start_limit.total`)",
    "GATEWAY_MAX_CONCURRENCY": "IDENTIFYs a user may make per 5 seconds (`session_start_limit.max_concurrency`)",
    "GATEWAY_RESUME_WINDOW_SECONDS": "How long a closed gateway session can still be resumed",
    "SEARCH_ENGINE": "Where messages are indexed for `GET /guilds/{id}/messages/search`: `sqlite` (FTS5, in a file "
                     "of its own), `postgres` (`tsvector`/GIN in the database above, which must be PostgreSQL), "
                     "empty for the database's own kind of the two, "
                     "`elasticsearch`, or `off` (the route answers 404 and nothing is indexed; so also with "
                     "`EVENT_BUS=off`, since the index is fed by the event stream)",
    "SEARCH_INDEXER": "Where the search indexer (a consumer group of the event stream) runs: `worker` (a greenlet "
                      "in each gunicorn worker), `process` (`flask search indexer`), `off`",
    "SEARCH_SQLITE_PATH": "The SQLite engine's index file; empty: beside the SQLite database "
                          "(`var/chatstore.search.sqlite3` by default)",
    "SEARCH_ELASTICSEARCH_URL": "Elasticsearch's URL with `SEARCH_ENGINE=elasticsearch`",
    "SEARCH_ELASTICSEARCH_INDEX": "Name of the Elasticsearch index (and prefix of its template and state index)",
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
    if settings.db_response_timeout * 1000 <= settings.db_statement_timeout_ms:
        problems.append("DB_RESPONSE_TIMEOUT must exceed DB_STATEMENT_TIMEOUT_MS (a slow statement is the server's "
                        "to cancel)")
    if settings.blob_store == "s3" and not settings.blob_s3_bucket:
        problems.append("BLOB_S3_BUCKET: required when BLOB_STORE=s3")
    if settings.blob_store == "s3" and not settings.attachment_signing_key:
        problems.append("ATTACHMENT_SIGNING_KEY: required when BLOB_STORE=s3 (every host must sign alike)")
    if settings.search_backend == "postgres" and settings.is_sqlite:
        problems.append("SEARCH_ENGINE=postgres: DATABASE_URL must be PostgreSQL (the index lives in it)")
    if problems:
        raise SettingsError(problems)
    return settings
