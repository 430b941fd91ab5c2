"""WSGI entry point for gunicorn. gevent patches before anything else is imported."""
from gevent import monkey

monkey.patch_all()

from app import create_app  # noqa: E402  (must follow the patch)

application = create_app()
