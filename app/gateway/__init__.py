"""The Discord gateway v10: a WebSocket endpoint on the same gunicorn gevent workers as the REST API.

Entry point: it consumes the event stream (app.events) and never writes messages. ``register`` adds the
``/gateway`` WebSocket route; docs/gateway.md says how it behaves.
"""
from __future__ import annotations

import os

import gevent
import gevent.event
from flask import Blueprint, Flask, current_app, request
from flask_sock import Sock

from app.gateway.connection import CloseConnection, GatewayConnection
from app.gateway.hub import GatewayHub
from app.gateway.protocol import MAX_PAYLOAD_BYTES, Close

#: Where the WebSocket is served; /api/v10/gateway hands out its URL.
GATEWAY_PATH = "/gateway"
SUPPORTED_VERSIONS = ("9", "10")

gateway = Blueprint("gateway", __name__)
sock = Sock()


def gateway_url(host_url: str) -> str:
    """The URL clients connect to: PUBLIC_GATEWAY_URL, else ws:// (wss:// behind https) on the request's host."""
    settings = current_app.config["SETTINGS"]
    if settings.public_gateway_url:
        return settings.public_gateway_url
    scheme, _, rest = host_url.rstrip("/").partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}{GATEWAY_PATH}"


def hub_of(app: Flask) -> GatewayHub:
    """This worker's hub, made on first use after the fork (a hub inherited from the master is not used)."""
    holder = app.extensions.get("gateway")
    if holder is None or holder[0] != os.getpid():
        holder = (os.getpid(), GatewayHub(app.extensions["chatstore"]))
        app.extensions["gateway"] = holder
    return holder[1]


def live_hub(app: Flask) -> GatewayHub | None:
    """The hub of this worker if it has one (for the graceful stop)."""
    holder = app.extensions.get("gateway")
    return holder[1] if holder is not None and holder[0] == os.getpid() else None


@gateway.before_request
def _without_permessage_deflate() -> None:
    # Discord's own gateway offers no permessage-deflate; clients compress with zlib-stream (a per-connection
    # stream the server chooses the memory of). simple-websocket would accept the extension whenever a client
    # offers it (aiohttp, so discord.py, does), deflating every frame a second time with a 32 KiB-window
    # compressor per connection: not offering it keeps one compressor.
    request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)


@sock.route(GATEWAY_PATH, bp=gateway)
def gateway_socket(ws) -> None:
    hub = hub_of(current_app)
    compress = request.args.get("compress") == "zlib-stream"
    connection = GatewayConnection(hub, ws, compress=compress, resume_url=gateway_url(request.host_url))
    version = request.args.get("v", "10")
    encoding = request.args.get("encoding", "json")
    if version not in SUPPORTED_VERSIONS:
        connection.refuse(CloseConnection(Close.INVALID_API_VERSION, "v must be 9 or 10"))
    elif encoding != "json":
        connection.refuse(CloseConnection(Close.DECODE_ERROR, "only encoding=json is served"))
    elif hub.stopping:
        connection.refuse(CloseConnection(Close.UNKNOWN_ERROR, "worker stopping; reconnect"))
    else:
        connection.run()


def _reader_greenlet(target) -> gevent.Greenlet:
    return gevent.Greenlet(target)


def register(app: Flask) -> None:
    app.config.setdefault("SOCK_SERVER_OPTIONS", {
        # simple-websocket closes with 1009 beyond this; the connection itself closes with 4002 from 4096 bytes
        # on, as Discord does. The margin lets a slightly large payload get Discord's code.
        "max_message_size": 4 * MAX_PAYLOAD_BYTES,
        # Its reader as a bare greenlet and its wake-up as gevent's Event rather than threading's (patched, they
        # are a Thread object with its own locks and a Condition): what an idle connection holds is smaller.
        "thread_class": _reader_greenlet, "event_class": gevent.event.Event,
    })
    app.register_blueprint(gateway)
