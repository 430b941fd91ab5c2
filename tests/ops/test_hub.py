"""The hub watch: a request that blocks the gevent hub is logged with its stack, and counted."""
from __future__ import annotations

import gevent
import pytest
from gevent import monkey

from app import create_app
from tests.ops.conftest import sample

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
def blocking_app(database):
    """The service with one more route, which blocks the hub the way a C call or an unpatched library would."""
    application = create_app(database)

    @application.get("/block")
    def block_the_hub_with_a_sleep_gevent_cannot_see():
        unpatched_sleep(0.4)
        return {"slept": True}

    yield application
    application.extensions["chatstore"].close()


# blocking_app comes before log_lines: creating an app installs a fresh log handler.
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
