"""Same-run baselines, served by the same gunicorn settings as the service (config/gunicorn.py).

- ``framework_app``: the framework ceiling, Flask answering a tiny JSON body: what the stack allows per request.
- ``serialization_app``: the serialization ceiling, Flask answering 50 message objects in Discord's wire form,
  built once at import from realistic messages, encoded on every request by the service's JSON encoder.

Both answer any path, so the same wrk scripts and readiness probe work against them.

- ``storage_app``: the storage ceilings of a backend (DATABASE_URL), through the service's engine and pool:
  ``POST /api/v10/channels/<id>/messages`` does exactly the create's INSERT (the SQL store's ``create_message``)
  and answers the message; ``GET`` the same path does exactly the page's SELECT (``list_messages``) and answers
  the page serialized as the service does. No token, permission, read cache, bookkeeping or event: what the
  service costs beyond them is its own rules.
"""
from gevent import monkey

monkey.patch_all()

import secrets  # noqa: E402

from flask import Flask, request  # noqa: E402  (after the patch, like wsgi.py)

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


class _StorageCeiling:
    """``storage_app``'s state, made in the worker on first use (after the fork, as the service makes its own): the
    service's engine and pool (``create_db_engine``, from the same DATABASE_URL and settings), the SQL message
    store on it, a snowflake generator, and the users, read once (the service answers them from its cache)."""

    def __init__(self):
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        from app.extensions import create_db_engine
        from app.ids import SLOT_COUNT, SnowflakeGenerator
        from app.messages.sql import SqlMessageStore
        from config import load_settings
        from models import User

        self.engine = create_db_engine(load_settings())
        self.store = SqlMessageStore(self.engine)
        self.ids = SnowflakeGenerator(secrets.randbelow(SLOT_COUNT))
        with Session(self.engine, expire_on_commit=False) as session:
            self.users = {user.id: user for user in session.scalars(select(User))}
            session.expunge_all()
        self.author_id = min(self.users)


_storage: _StorageCeiling | None = None


def _storage_ceiling() -> _StorageCeiling:
    global _storage
    if _storage is None:
        _storage = _StorageCeiling()
    return _storage


storage_app = _app()


@storage_app.route("/api/v10/channels/<int:channel_id>/messages", methods=["GET"])
def stored_page(channel_id: int):
    """The page's SELECT (the SQL store's ``list_messages``) and its serialization, nothing else."""
    from app.api.json import encoded_json_response
    from app.api.serializers import messages_body
    from app.services.messages import MessageBundle

    ceiling = _storage_ceiling()
    limit = int(request.args.get("limit", PAGE_SIZE))
    messages = ceiling.store.list_messages(channel_id, limit=limit)
    return encoded_json_response(messages_body(MessageBundle(messages=messages, users=ceiling.users)))


@storage_app.route("/api/v10/channels/<int:channel_id>/messages", methods=["POST"])
def stored_message(channel_id: int):
    """The create's INSERT (the SQL store's ``create_message``, in its own transaction) and the message answered."""
    from app.messages.base import Message
    from app.services.messages import MessageBundle
    from app.services.wire import message_json

    ceiling = _storage_ceiling()
    body = request.get_json()
    message = Message(id=ceiling.ids.next_id(), channel_id=channel_id, author_id=ceiling.author_id,
                      content=body["content"])
    ceiling.store.create_message(message)
    return json_response(message_json(message, MessageBundle(messages=[message], users=ceiling.users)))


@storage_app.route("/", defaults={"path": ""}, methods=["GET"])
@storage_app.route("/<path:path>", methods=["GET"])
def storage_ready(path: str):
    _storage_ceiling()
    return json_response({"ok": True})
