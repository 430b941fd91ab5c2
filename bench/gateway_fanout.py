"""Gateway fan-out: N idle sessions of one worker in one guild, each write delivered to all; not part of CI.

    .venv/bin/python -m bench.gateway_fanout [--sessions 1000] [--messages 40] [--seconds 8] [--connections 16]
                                             [--backend sqlite|postgres] [--event-bus sql|redis]

One gunicorn worker. bench/gateway_sessions.py (asyncio and aiohttp in a plain process, zlib-stream like
discord.py) opens the sessions; this process then:

- memory: the worker's resident memory before the sessions (after one session and a REST load have warmed it)
  and once they are all idle, divided by N: the cost of an idle session, everything included (the WebSocket
  library's reader greenlet and buffers, the request greenlet, the zlib stream, the session's state);
- fan-out latency: posts ``--messages`` messages one after another into the sessions' channel, each on a new
  connection, and records when each answered 2xx; the client reports when the last of the N sessions received
  it (both from CLOCK_MONOTONIC, shared by the processes of a machine): p50, p99 and max of receipt minus
  answer. The client's own work (inflating and parsing N copies in one asyncio loop) is included; the CPU the
  worker and the client spent per message (each POST's own handling included) says where the time went on a
  machine whose other load stretches wall-clock figures;
- REST cost: POST throughput under wrk (bench/lua/create.lua) into a channel of another guild, before any
  session (so before the worker's hub follows the stream) and with the N sessions connected (same run: the
  ratio), and the worker's CPU ms per request.

Results go to bench/results/<timestamp>-gateway-fanout.json; the server's log beside it.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
from sqlalchemy import update  # noqa: E402

from app.extensions import Resources  # noqa: E402
from app.gateway.protocol import Intent  # noqa: E402
from bench.paths import RESULTS_DIR  # noqa: E402
from bench.probes import process_cpu_seconds, resident_megabytes, workers_cpu_seconds  # noqa: E402
from bench.server import serve, wait_for_workers  # noqa: E402
from bench.wrk import require_wrk, run_wrk  # noqa: E402
from config import PROJECT_ROOT  # noqa: E402
from models import User  # noqa: E402
from tests.support.databases import migrated_database, postgres_reachable  # noqa: E402
from tests.support.factories import Factory  # noqa: E402
from tests.support.gateway import GatewayClient  # noqa: E402
from tests.support.http import JsonClient  # noqa: E402

READY_PATH = "/api/v10/users/@me"
CLIENT = Path(__file__).with_name("gateway_sessions.py")
PYTHON = str(PROJECT_ROOT / ".venv" / "bin" / "python")
#: Pause between fan-out messages, so that each is measured alone.
MESSAGE_GAP_SECONDS = 0.25


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.gateway_fanout", description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=8.0, help="each wrk run")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--event-bus", choices=("sql", "redis"), default="sql")
    return parser.parse_args(argv)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def rest_load(server, master_pid: int, channel_id: int, token: str, args) -> dict:
    environment = {"BENCH_CHANNELS": str(channel_id), "BENCH_TOKENS": token}
    cpu_before = workers_cpu_seconds(master_pid)
    result = run_wrk(server.url + "/", "create.lua", connections=args.connections, seconds=args.seconds,
                     environment=environment)
    cpu = workers_cpu_seconds(master_pid) - cpu_before
    return {"requests_per_second": result.requests / result.seconds, "p50_ms": result.p50_ms,
            "p99_ms": result.p99_ms, "errors": result.errors,
            "cpu_ms_per_request": 1000 * cpu / max(1, result.requests)}


def main(argv=None) -> None:
    args = parse_args(argv)
    require_wrk()
    if args.backend == "postgres" and (reason := postgres_reachable()):
        raise SystemExit(f"PostgreSQL unavailable: {reason}")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    log_path = RESULTS_DIR / f"{stamp}-gateway-fanout-server.log"
    with tempfile.TemporaryDirectory() as directory, migrated_database(args.backend, Path(directory)) as base:
        resources = Resources(base)
        make = Factory(resources)
        writer, bot = make.actor("fanout-writer"), make.actor("fanout-bot")
        guild_id, channel_id = make.guild(writer, name="fan-out")
        make.member(guild_id, bot)
        _, quiet_channel = make.guild(writer, name="quiet")
        with resources.engine.begin() as connection:
            connection.execute(update(User).where(User.id == bot.id).values(privileged_intents=0))
        resources.close()
        environment = {"DATABASE_URL": base.database_url, "WEB_WORKERS": "1", "RATE_LIMIT_ENABLED": "false",
                       "EVENT_BUS": args.event_bus, "GATEWAY_MAX_CONCURRENCY": str(10 * args.sessions),
                       "GATEWAY_SESSION_START_LIMIT": str(10 * args.sessions),
                       "WORKER_CONNECTIONS": str(args.sessions + 500)}
        with serve("wsgi:application", environment, log_path, ready_path=READY_PATH) as server:
            [worker] = wait_for_workers(server, 1)
            ws_url = server.url.replace("http://", "ws://") + "/gateway"
            rest_load(server, server.process.pid, quiet_channel, writer.token, args)  # warm-up
            # Before any session: the worker's hub (its stream readers) is not running yet either.
            without = rest_load(server, server.process.pid, quiet_channel, writer.token, args)
            warm = GatewayClient(ws_url, compress=True)
            warm.identify(bot.token, int(Intent.GUILDS | Intent.GUILD_MESSAGES))
            warm.close()
            gevent.sleep(2)
            rss_before = resident_megabytes(worker)
            client = subprocess.Popen([PYTHON, str(CLIENT), ws_url, bot.token, str(args.sessions)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                      env={**os.environ, "PYTHONPATH": ""})
            try:
                opened = time.monotonic()
                with gevent.Timeout(600):
                    line = client.stdout.readline()
                assert json.loads(line) == {"ready": args.sessions}, line
                open_seconds = time.monotonic() - opened
                gevent.sleep(3)
                rss_after = resident_megabytes(worker)
                receipts: dict[str, float] = {}

                def read_receipts():
                    for received in client.stdout:
                        report = json.loads(received)
                        receipts[report["content"]] = report["last"]

                reader = gevent.spawn(read_receipts)
                answered: dict[str, float] = {}
                worker_cpu_before = workers_cpu_seconds(server.process.pid)
                client_cpu_before = process_cpu_seconds(client.pid)
                api = JsonClient(server.url, writer.token, timeout=30)
                for number in range(args.messages):
                    content = f"fanout{number}"
                    status, body = api.post(f"/channels/{channel_id}/messages",
                                            {"content": f"fan-out message {number}", "nonce": content})
                    answered[content] = time.monotonic()
                    assert status == 200, body
                    gevent.sleep(MESSAGE_GAP_SECONDS)
                deadline = time.monotonic() + 60
                while len(receipts) < args.messages and time.monotonic() < deadline:
                    gevent.sleep(0.1)
                latencies = [1000 * max(0.0, receipts[c] - t) for c, t in answered.items() if c in receipts]
                worker_cpu = workers_cpu_seconds(server.process.pid) - worker_cpu_before
                client_cpu = process_cpu_seconds(client.pid) - client_cpu_before
                with_sessions = rest_load(server, server.process.pid, quiet_channel, writer.token, args)
            finally:
                if client.poll() is None:
                    client.stdin.write("stop\n")
                    client.stdin.flush()
                    try:
                        client.wait(30)
                    except subprocess.TimeoutExpired:
                        client.kill()
                reader_alive = locals().get("reader")
                if reader_alive is not None:
                    reader_alive.kill()
    result = {
        "date": stamp, "backend": args.backend, "event_bus": args.event_bus, "sessions": args.sessions,
        "sessions_opened_in_seconds": round(open_seconds, 1),
        "worker_rss_mb_before": round(rss_before, 1), "worker_rss_mb_with_sessions": round(rss_after, 1),
        "kb_per_idle_session": round((rss_after - rss_before) * 1024 / args.sessions, 1),
        "fanout_messages": args.messages, "fanout_delivered_to_all": len(latencies),
        "fanout_p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "fanout_p99_ms": round(percentile(latencies, 0.99), 1) if latencies else None,
        "fanout_max_ms": round(max(latencies), 1) if latencies else None,
        "fanout_worker_cpu_ms_per_message": round(1000 * worker_cpu / args.messages, 1),
        "fanout_client_cpu_ms_per_message": round(1000 * client_cpu / args.messages, 1),
        "rest_without_sessions": without, "rest_with_sessions": with_sessions,
        "rest_throughput_ratio": round(with_sessions["requests_per_second"] / without["requests_per_second"], 2),
    }
    (RESULTS_DIR / f"{stamp}-gateway-fanout.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
