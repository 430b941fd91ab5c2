"""The application factory. Nothing here connects or reads the environment at import time."""
from __future__ import annotations

import atexit

from flask import Flask

from config import Settings, load_settings

#: Bodies above this are refused with 413 before they are read (Discord's limit for uploads is 25 MiB).
MAX_CONTENT_LENGTH = 25 * 1024 * 1024


def create_app(settings: Settings | None = None) -> Flask:
    from app.api import register as register_api
    from app.api.json import OrjsonProvider
    from app.cli import register as register_cli
    from app.extensions import Resources
    from app.gateway import register as register_gateway
    from app.observability import init_app as init_observability

    settings = settings or load_settings()
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    app.config.update(SETTINGS=settings, MAX_CONTENT_LENGTH=MAX_CONTENT_LENGTH)
    resources = Resources(settings)
    app.extensions["chatstore"] = resources
    init_observability(app, settings)
    register_api(app)
    register_gateway(app)
    register_cli(app)
    atexit.register(resources.close)
    return app
