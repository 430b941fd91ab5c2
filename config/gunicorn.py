"""gunicorn settings. gevent patches first; nothing of the app, the database drivers or the Cassandra driver
is imported here, so the master holds no connection and every worker builds its own after fork."""
from gevent import monkey

monkey.patch_all()

import gc  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
from gunicorn import glogging  # noqa: E402
from gunicorn import util as gunicorn_util  # noqa: E402
from gunicorn.workers.ggevent import GeventWorker  # noqa: E402

from config import CLOSE_CONNECTION, load_settings  # noqa: E402  (stdlib only, after the patch)
from config.worker import ConnectionPolicy, ReadPolicy, json_answer  # noqa: E402

_settings = load_settings()


class FairGeventWorker(ConnectionPolicy, GeventWorker):
    """gunicorn's gevent worker, taking turns between keep-alive connections.

    The stock worker serves a keep-alive connection in a loop on one greenlet, and a gevent socket read that
    finds data already waiting returns at once, without passing through the hub. On loopback a client's next
    request is usually there by the time the response has gone, so one connection could be served back to
    back for seconds while the worker's other connections, and its listening socket, waited: seconds of p99
    even for a hello-world app (bench/ measures it). After each request the greenlet now waits for the next
    turn of the event loop, behind every connection whose request was already waiting.
    """

    def handle_request(self, listener_name, req, sock, addr):
        super().handle_request(listener_name, req, sock, addr)
        # gevent.sleep(0) may resume this greenlet before the loop polls for I/O again (see its docs); any
        # positive delay is a timer, which runs only after the next poll's ready connections have had a turn.
        gevent.sleep(_NEXT_LOOP_TURN_SECONDS)

    def load_wsgi(self):
        super().load_wsgi()
        self.application = self.wsgi
        self.wsgi = self._closing_when_stopping

    def _closing_when_stopping(self, environ, start_response):
        """The app, answering ``Connection: close`` when the worker began stopping during the request, or when
        the app set ``environ[CLOSE_CONNECTION]`` (a request body it could not read to its end).

        gunicorn decides to close before calling the app, so a request in flight at SIGTERM was answered
        ``keep-alive`` on a connection about to close, and a client reusing it failed. gunicorn drops a
        ``Connection`` header the app sets (hop-by-hop), so the decision is made on its response object, which
        ``start_response`` is a method of."""
        def start(status, headers, exc_info=None):
            if not self.alive or environ.get(CLOSE_CONNECTION):
                start_response.__self__.force_close()
            return start_response(status, headers, exc_info)
        return self.application(environ, start)

    def handle_exit(self, sig, frame):
        """SIGTERM: stop as gunicorn does, and first hand the gateway's sessions over. Its WebSockets would
        otherwise hold the worker until graceful_timeout and then drop; saved and told to RECONNECT, their
        clients resume on another worker with nothing missed."""
        super().handle_exit(sig, frame)
        gevent.spawn(_hand_over_gateway_sessions, self)


_NEXT_LOOP_TURN_SECONDS = 1e-6
FairGeventWorker.read_policy = ReadPolicy(
    header_timeout=_settings.request_header_timeout, body_timeout=_settings.request_body_timeout,
    body_min_rate=_settings.request_body_min_rate, keepalive_timeout=_settings.keepalive_timeout)
FairGeventWorker.max_per_address = _settings.max_connections_per_address


def write_json_error(sock, status_int, reason, mesg):
    """gunicorn's answer to a request it rejects before the app sees it (a request line or headers too long,
    bytes that are not HTTP), in the API's error form: clients parse every error body as JSON. gunicorn's
    workers call ``gunicorn.util.write_error`` for these; replacing that one function keeps the rest of its
    handling (status choice, logging, the access line) as it is."""
    gunicorn_util.write_nonblock(sock, json_answer(status_int, reason, {"message": f"{status_int}: {reason}",
                                                                         "code": 0}))


gunicorn_util.write_error = write_json_error

bind = _settings.bind
workers = _settings.web_workers
worker_class = FairGeventWorker
worker_connections = _settings.worker_connections
# gunicorn accepts whole seconds only.
graceful_timeout = math.ceil(_settings.graceful_timeout)
timeout = 30
# Whole seconds, as gunicorn takes them; the worker's DeadlineSocket enforces the exact value (config/worker.py).
keepalive = math.ceil(_settings.keepalive_timeout)
# gunicorn's control socket (for its gunicornc tool) is bound by default at one path per user
# ($XDG_RUNTIME_DIR/gunicorn.ctl or ~/.gunicorn/gunicorn.ctl), shared by every instance on the host, so one
# service's tooling could reach another's master. Off: signals to the master's PID (docs/operations.md) do what it
# does, for that one instance only.
control_socket_disable = True
# The app writes its own JSON access line (with route template, user and request id) for every request.
accesslog = None


class AppWritesTheAccessLines(glogging.Logger):
    """gunicorn's logger without gunicorn's access line. With ``logconfig_dict`` set, gunicorn builds every
    request's access atoms and a log record even though no handler takes them (2 to 4% of a cached page's
    worker CPU in py-spy's profile, for nothing): the app's line is the access log."""

    def access(self, resp, req, environ, request_time):
        return


logger_class = AppWritesTheAccessLines
wsgi_app = "wsgi:application"

# gunicorn's own lines (boot, worker exits, signals) as JSON on stderr, like the app's. The root logger gets no
# handler here: each worker's app installs its own, and a second one would print every line twice.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": _settings.log_level, "handlers": []},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["json_stderr"], "propagate": False,
                           "qualname": "gunicorn.error"},
        "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False, "qualname": "gunicorn.access"},
    },
    "handlers": {
        "json_stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"},
    },
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.orjson.OrjsonFormatter",
            "fmt": ["levelname", "name", "process", "message"],
            "rename_fields": {"levelname": "level", "name": "logger", "process": "pid"},
            "timestamp": "time",
        },
    },
}

# The hub watch: gevent's monitor thread reports the hub blocked beyond the threshold, and each worker's app logs
# and counts the reports (app/observability/hub.py); gevent's own plain-text report would only duplicate them.
# The thread is started per worker once the app is loaded (post_worker_init): loading it imports for seconds
# without yielding, which is the hub blocked by the letter but delays no request, and would be reported on
# every boot. A hub that is already running does not start the thread by itself, hence the explicit start.
if _settings.hub_blocking_threshold_ms:
    gevent.config.max_blocking_time = _settings.hub_blocking_threshold_ms / 1000
    gevent.config.print_blocking_reports = False
    # The monitor would also watch memory if psutil were installed, and says so once per worker; the app
    # reports each worker's resident memory as a metric instead.
    warnings.filterwarnings("ignore", message="Unable to monitor memory usage")


def post_worker_init(worker):
    """Start the hub watch, the event relay and the search indexer in this worker, now that the app is loaded and
    before it accepts connections; then put what the worker has loaded out of the garbage collector's sight."""
    if _settings.hub_blocking_threshold_ms:
        # Only for this hub: with the setting left on, every hub started later (in a native thread of gevent's
        # threadpool, say) would start a monitor thread of its own.
        gevent.config.monitor_thread = True
        gevent.get_hub().start_periodic_monitoring_thread()
        gevent.config.monitor_thread = False
    resources = _resources_of(worker)
    if resources is not None:
        from app.events.relay import start_relay
        from app.search.indexer import start_indexer
        from app.services.channel_writes import StoreChecks

        # With EVENT_RELAY=worker (the default) every worker runs one and one of them leads; otherwise nothing.
        start_relay(resources, confirm=StoreChecks(resources.message_store))
        # With SEARCH_INDEXER=worker (the default) every worker is a consumer of the indexer's group.
        start_indexer(resources)
    # The app, its modules and their tables (about 150,000 objects) live as long as the worker, yet every full
    # collection walked them all: 80 to 150 ms with the hub stopped, several times a minute under load, in the
    # latency of every request in flight. Frozen, they are never walked; a full collection of what requests leave
    # takes about 8 ms. Boot's own garbage is collected first, so that none of it is frozen for good.
    gc.collect()
    gc.freeze()


def _hand_over_gateway_sessions(worker):
    application = getattr(worker, "application", None)
    if application is None:
        return
    from app.gateway import live_hub

    hub = live_hub(application)
    if hub is not None:
        hub.shutdown()


def _resources_of(worker):
    application = getattr(worker, "application", None)
    return getattr(application, "extensions", {}).get("chatstore") if application else None


# Metrics from every worker: prometheus_client writes samples to files in this directory, and chooses to do so
# when first imported, so it must be in the environment before any worker starts. A re-read of this file (on
# SIGHUP) finds it already set and keeps it.
_METRICS_DIRECTORY_PREFIX = "chatstore-metrics-"
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix=_METRICS_DIRECTORY_PREFIX)


# Rate-limit counts shared by this master's workers (app/ratelimit_shared.py): a file the workers map, in memory
# (/dev/shm) where there is one. Named here, before any worker starts, so that every worker, a restarted one
# included, maps the same; a re-read of this file (on SIGHUP) keeps it.
_RATE_LIMIT_TABLE_PREFIX = "chatstore-ratelimit-"
if not os.environ.get("CHATSTORE_RATE_LIMIT_TABLE"):
    _table_directory = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    _descriptor, _table_path = tempfile.mkstemp(prefix=_RATE_LIMIT_TABLE_PREFIX, dir=_table_directory)
    os.close(_descriptor)
    os.environ["CHATSTORE_RATE_LIMIT_TABLE"] = _table_path


def _metrics_directory() -> Path:
    return Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def on_starting(server):
    """Start the counters from zero: files left by an earlier run would be summed with this one's."""
    directory = _metrics_directory()
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in directory.glob("*.db"):
        leftover.unlink()


def child_exit(server, worker):
    """Drop the exited worker's live gauges (its counters and histograms are kept, so totals never go down)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def worker_exit(server, worker):
    """Stop the search indexer, hand the event relay over, give back the worker's snowflake slot, close its pools
    and driver sessions and export its last spans."""
    resources = _resources_of(worker)
    if resources is not None:
        from app.events.relay import stop_relay
        from app.observability.tracing import shutdown_tracing
        from app.search.indexer import stop_indexer

        stop_indexer()
        stop_relay()
        resources.close()
        shutdown_tracing()  # sends the spans still queued
        server.log.info("worker %s closed its database pool, message store and snowflake slot", worker.pid)


def on_exit(server):
    """Remove the metrics directory and the rate-limit table when this file made them (a directory the operator
    chose is left alone)."""
    directory = _metrics_directory()
    if directory.parent == Path(tempfile.gettempdir()) and directory.name.startswith(_METRICS_DIRECTORY_PREFIX):
        shutil.rmtree(directory, ignore_errors=True)
    table = Path(os.environ["CHATSTORE_RATE_LIMIT_TABLE"])
    if table.name.startswith(_RATE_LIMIT_TABLE_PREFIX):
        table.unlink(missing_ok=True)
