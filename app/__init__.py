"""The application factory. Nothing here connects or reads the environment at import time."""
from __future__ import annotations

import atexit

from flask import Flask

from config import Settings, load_settings


def create_app(settings: Settings | None = None) -> Flask:
    from app.api import register as register_api
    from app.api.bodies import DEFAULT_JSON_LIMIT, BoundedRequest
    from app.api.json import OrjsonProvider
    from app.cli import register as register_cli
    from app.extensions import Resources
    from app.gateway import register as register_gateway
    from app.observability import init_app as init_observability

    settings = settings or load_settings()
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    app.request_class = BoundedRequest
    # The API sets each route's own limit (app.api.bodies); this one holds for every other path.
    app.config.update(SETTINGS=settings, MAX_CONTENT_LENGTH=DEFAULT_JSON_LIMIT)
    resources = Resources(settings)
    app.extensions["chatstore"] = resources
    init_observability(app, settings)
    register_api(app)
    register_gateway(app)
    register_cli(app)
    atexit.register(resources.close)
    return app
