"""gunicorn settings. gevent patches first; nothing of the app, the database drivers or the Cassandra driver
is imported here, so the master holds no connection and every worker builds its own after fork."""
from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
from gunicorn import util as gunicorn_util  # noqa: E402
from gunicorn.workers.ggevent import GeventWorker  # noqa: E402

from config import load_settings  # noqa: E402  (stdlib only, after the patch)

_settings = load_settings()


class FairGeventWorker(GeventWorker):
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


_NEXT_LOOP_TURN_SECONDS = 1e-6


def write_json_error(sock, status_int, reason, mesg):
    """gunicorn's answer to a request it rejects before the app sees it (a request line or headers too long,
    bytes that are not HTTP), in the API's error form: clients parse every error body as JSON. gunicorn's
    workers call ``gunicorn.util.write_error`` for these; replacing that one function keeps the rest of its
    handling (status choice, logging, the access line) as it is."""
    body = json.dumps({"message": f"{status_int}: {reason}", "code": 0}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
    gunicorn_util.write_nonblock(sock, head + body)


gunicorn_util.write_error = write_json_error

bind = _settings.bind
workers = _settings.web_workers
worker_class = FairGeventWorker
worker_connections = _settings.worker_connections
# gunicorn accepts whole seconds only.
graceful_timeout = math.ceil(_settings.graceful_timeout)
timeout = 30
keepalive = 5
# The app writes its own JSON access line (with route template, user and request id) for every request.
accesslog = None
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
    """Start the hub watch and the event relay in this worker, now that the app is loaded and before it accepts
    connections."""
    if _settings.hub_blocking_threshold_ms:
        # Only for this hub: with the setting left on, every hub started later (in a native thread of gevent's
        # threadpool, say) would start a monitor thread of its own.
        gevent.config.monitor_thread = True
        gevent.get_hub().start_periodic_monitoring_thread()
        gevent.config.monitor_thread = False
    resources = _resources_of(worker)
    if resources is not None:
        from app.events.relay import start_relay
        from app.services.channel_writes import StoreChecks

        # With EVENT_RELAY=worker (the default) every worker runs one and one of them leads; otherwise nothing.
        start_relay(resources, confirm=StoreChecks(resources.message_store))


def _resources_of(worker):
    application = getattr(worker, "wsgi", None)
    return getattr(application, "extensions", {}).get("chatstore") if application else None


# Metrics from every worker: prometheus_client writes samples to files in this directory, and chooses to do so
# when first imported, so it must be in the environment before any worker starts. A re-read of this file (on
# SIGHUP) finds it already set and keeps it.
_METRICS_DIRECTORY_PREFIX = "chatstore-metrics-"
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix=_METRICS_DIRECTORY_PREFIX)


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
    """Hand the event relay over, give back the worker's snowflake slot, close its pools and driver sessions and
    export its last spans."""
    resources = _resources_of(worker)
    if resources is not None:
        from app.events.relay import stop_relay
        from app.observability.tracing import shutdown_tracing

        stop_relay()
        resources.close()
        shutdown_tracing()  # sends the spans still queued
        server.log.info("worker %s closed its database pool, message store and snowflake slot", worker.pid)


def on_exit(server):
    """Remove the metrics directory when this file made it (a directory the operator chose is left alone)."""
    directory = _metrics_directory()
    if directory.parent == Path(tempfile.gettempdir()) and directory.name.startswith(_METRICS_DIRECTORY_PREFIX):
        shutil.rmtree(directory, ignore_errors=True)
