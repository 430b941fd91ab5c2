"""The service's own Python CPU per kept page, in one process: no gunicorn, no wrk, no neighbours' load in it.

    .venv/bin/python -m gevent.monkey --module bench.kept_page_cost [--requests 4000] [--segments 8]

The worker CPU per request that ``python -m bench`` reports moves 2 to 3 x with the load of a shared machine,
which hides a change of a tenth of a millisecond. This drives the latest 50 messages of a channel (kept in the
read cache after the first request, no reactions) through Flask's test client on a migrated SQLite database,
with the bench's settings (rate limits off, metrics and the access line on, the line sent to /dev/null), and
prints the process CPU per request of the quickest of ``--segments`` equal segments: the least disturbed one.
The test client adds its own cost (about 0.1 ms), the same in both trees. To measure another tree (one without
this file), run this file from that tree's directory, which gevent's runner puts first on the path:
``cd ../other && PYTHONPATH=$PWD .venv/bin/python -m gevent.monkey ../this/bench/kept_page_cost.py``.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path

PAGE = 50


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.kept_page_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--segments", type=int, default=8)
    args = parser.parse_args(argv)

    from app import create_app
    from tests.support.databases import migrated_database
    from tests.support.factories import Factory

    with migrated_database("sqlite", Path(tempfile.mkdtemp(prefix="kept-page-"))) as settings, \
            open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        app = create_app(settings)
        try:
            make = Factory(app.extensions["chatstore"])
            owner = make.actor("bench-owner")
            _guild_id, channel_id = make.guild(owner, everyone=0xFFFFFFFF)
            client = app.test_client()
            for number in range(PAGE):
                answer = client.post(f"/api/v10/channels/{channel_id}/messages", headers=owner.headers,
                                     json={"content": f"benchmark message {number} " * 4})
                assert answer.status_code == 200, answer.data
            url = f"/api/v10/channels/{channel_id}/messages?limit={PAGE}"
            for _ in range(200):
                assert client.get(url, headers=owner.headers).status_code == 200
            per_segment = args.requests // args.segments
            quickest = float("inf")
            for _ in range(args.segments):
                started = time.process_time()
                for _ in range(per_segment):
                    client.get(url, headers=owner.headers)
                quickest = min(quickest, (time.process_time() - started) / per_segment)
        finally:
            app.extensions["chatstore"].close()
    print(f"kept page of {PAGE}: {quickest * 1000:.3f} CPU ms per request (quickest of {args.segments} segments "
          f"of {per_segment})")


if __name__ == "__main__":
    main()
