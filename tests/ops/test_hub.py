"""The hub watch: a request that blocks the gevent hub is logged with its stack, and counted."""
from __future__ import annotations

import io

import gevent
import pytest
from gevent import monkey

from app import create_app
from app.observability.logs import configure_logging
from tests.ops.conftest import LogLines, sample
from tests.support.databases import migrated_database

unpatched_sleep = monkey.get_original("time", "sleep")


@pytest.fixture
def hub_monitor():
    """gevent's monitor thread at a 50 ms threshold, as config/gunicorn.py starts it in every worker."""
    hub = gevent.get_hub()
    previous = gevent.config.max_blocking_time, gevent.config.monitor_thread, gevent.config.print_blocking_reports
    gevent.config.max_blocking_time, gevent.config.monitor_thread, gevent.config.print_blocking_reports = \
        0.05, True, False
    gevent.sleep(0)  # the monitor stops at once if it finds the hub greenlet not started yet
    monitor = hub.start_periodic_monitoring_thread()
    yield monitor
    monitor.kill()
    hub.periodic_monitoring_thread = None
    gevent.config.max_blocking_time, gevent.config.monitor_thread, gevent.config.print_blocking_reports = previous


@pytest.fixture
def blocking_app(tmp_path):
    """The service with one more route, which blocks the hub the way a C call or an unpatched library would.

    The watch does not depend on the database, so the test runs once, on SQLite, rather than per backend: a
    second monitor thread started on the same hub late in a long test session was seen to report nothing.
    """
    with migrated_database("sqlite", tmp_path) as settings:
        application = create_app(settings)

        @application.get("/block")
        def block_the_hub_with_a_sleep_gevent_cannot_see():
            unpatched_sleep(0.4)
            return {"slept": True}

        yield application
        application.extensions["chatstore"].close()


@pytest.fixture
def log_lines(blocking_app):
    """The app's root handler writing to a buffer (blocking_app first: creating an app installs a fresh handler)."""
    stream = io.StringIO()
    configure_logging("DEBUG").setStream(stream)
    yield LogLines(stream)
    configure_logging(blocking_app.config["SETTINGS"].log_level)


@pytest.mark.filterwarnings("ignore:Unable to monitor memory usage")  # gevent's own, without psutil
def test_a_request_blocking_the_hub_is_logged_with_its_stack_and_counted(blocking_app, hub_monitor, log_lines):
    before = sample("chatstore_gevent_hub_blocked_total")
    gevent.sleep(0.2)  # the monitor thread's first pass

    response = gevent.spawn(blocking_app.test_client().get, "/block").get(timeout=5)
    gevent.sleep(0.2)

    assert response.status_code == 200
    assert sample("chatstore_gevent_hub_blocked_total") >= before + 1
    [report, *_] = log_lines.records("chatstore.hub")
    assert report["level"] == "WARNING" and report["message"] == "gevent hub blocked for more than 50 ms"
    assert "block_the_hub_with_a_sleep_gevent_cannot_see" in report["stack"]
    assert "Greenlet Locals" not in report["stack"]
