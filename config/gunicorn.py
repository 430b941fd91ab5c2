"""gunicorn settings. gevent patches first; nothing of the app, the database drivers or the Cassandra driver
is imported here, so the master holds no connection and every worker builds its own after fork."""
from gevent import monkey

monkey.patch_all()

from config import load_settings  # noqa: E402  (stdlib only, after the patch)

_settings = load_settings()

bind = _settings.bind
workers = _settings.web_workers
worker_class = "gevent"
worker_connections = _settings.worker_connections
graceful_timeout = 20
timeout = 30
keepalive = 5
accesslog = None
wsgi_app = "wsgi:application"


def worker_exit(server, worker):
    """Give back the worker's snowflake slot and close its pools and driver sessions."""
    application = getattr(worker, "wsgi", None)
    resources = getattr(application, "extensions", {}).get("chatstore") if application else None
    if resources is not None:
        resources.close()
