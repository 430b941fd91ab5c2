"""Same-run baselines, served by the same gunicorn settings as the service (config/gunicorn.py).

- ``framework_app``: the framework ceiling, Flask answering a tiny JSON body: what the stack allows per request.
- ``serialization_app``: the serialization ceiling, Flask answering 50 message objects in Discord's wire form,
  built once at import from realistic messages, encoded on every request by the service's JSON encoder.

Both answer any path, so the same wrk scripts and readiness probe work against them.
"""
from gevent import monkey

monkey.patch_all()

from flask import Flask  # noqa: E402  (after the patch, like wsgi.py)

from app.api.json import OrjsonProvider, json_response  # noqa: E402
from bench.fixtures import sample_wire_messages  # noqa: E402

PAGE_SIZE = 50


def _app() -> Flask:
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    return app


framework_app = _app()
serialization_app = _app()
_PAGE = sample_wire_messages(PAGE_SIZE)


@framework_app.route("/", defaults={"path": ""}, methods=["GET", "POST", "PUT"])
@framework_app.route("/<path:path>", methods=["GET", "POST", "PUT"])
def tiny_json(path: str):
    return json_response({"ok": True})


@serialization_app.route("/", defaults={"path": ""}, methods=["GET", "POST", "PUT"])
@serialization_app.route("/<path:path>", methods=["GET", "POST", "PUT"])
def message_page(path: str):
    return json_response(_PAGE)
