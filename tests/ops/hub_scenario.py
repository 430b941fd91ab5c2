"""The hub watch in a fresh gevent-patched process, as in a gunicorn worker (run by tests/ops/test_hub.py).

The service gets one extra route that blocks the hub the way a C call or an unpatched library would; with
gevent's monitor at a 50 ms threshold, a request to it must be logged with its stack and counted. Prints one
JSON line: the response status, the metric before and after, and the hub log records.
"""
import io
import json
import tempfile
from pathlib import Path

import gevent
from gevent import monkey

from app import create_app
from app.observability.logs import configure_logging
from tests.ops.conftest import LogLines, sample
from tests.support.databases import migrated_database

unpatched_sleep = monkey.get_original("time", "sleep")


def main() -> None:
    with tempfile.TemporaryDirectory() as directory, migrated_database("sqlite", Path(directory)) as settings:
        application = create_app(settings)

        @application.get("/block")
        def block_the_hub_with_a_sleep_gevent_cannot_see():
            unpatched_sleep(0.4)
            return {"slept": True}

        stream = io.StringIO()
        configure_logging("DEBUG").setStream(stream)
        gevent.config.max_blocking_time, gevent.config.monitor_thread = 0.05, True
        gevent.config.print_blocking_reports = False
        gevent.sleep(0)  # the monitor stops at once if it finds the hub greenlet not started yet
        gevent.get_hub().start_periodic_monitoring_thread()
        gevent.sleep(0.2)  # the monitor thread's first pass
        before = sample("chatstore_gevent_hub_blocked_total")
        status = gevent.spawn(application.test_client().get, "/block").get(timeout=5).status_code
        gevent.sleep(0.2)
        after = sample("chatstore_gevent_hub_blocked_total")
        application.extensions["chatstore"].close()
    print(json.dumps({"status": status, "before": before, "after": after,
                      "reports": LogLines(stream).records("chatstore.hub")}))


if __name__ == "__main__":
    main()
