"""Run a test cluster until terminated: ``python -m tests.support.cqlnode --nodes 3``.

Prints one JSON line when listening: ``{"port", "contact_points", "control_port"}``.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402  (after the patch, as everything here)
import json  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402

from .control import serve_control  # noqa: E402
from .server import CqlTestCluster  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.support.cqlnode", description=__doc__)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--port", type=int, default=0, help="CQL port of every node (default: a free one)")
    parser.add_argument("--first-address", type=int, default=2, help="last octet of the first node's 127.0.0.N")
    parser.add_argument("--control-port", type=int, default=0)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cluster = CqlTestCluster(arguments.nodes, port=arguments.port, first_address=arguments.first_address).start()
    control = serve_control(cluster, ("127.0.0.1", arguments.control_port))
    print(json.dumps({"port": cluster.port, "contact_points": cluster.contact_points,
                      "control_port": control.server_port}), flush=True)
    stopped = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stopped.set)
    gevent.signal_handler(signal.SIGINT, stopped.set)
    stopped.wait()
    control.stop()
    cluster.stop()


main()
