"""Wire objects only the API serves: the bot's application, and pages of messages (encoded once per kept page).

Every other wire object (messages, users, guilds, roles, members, channels) is built in app.services.wire, which
the events and `flask messages export` share.
"""
from __future__ import annotations

import weakref
from typing import Any

from app.api.json import json_bytes
from app.domain import UserSnapshot
from app.services.wire import message_json, user_json


def application_json(user: UserSnapshot) -> dict[str, Any]:
    """The bot's application: this service has one application per bot user, sharing its id."""
    return {
        "id": str(user.id), "name": user.username, "description": "", "icon": None, "bot_public": False,
        "bot_require_code_grant": False, "owner": user_json(user), "verify_key": "0" * 64, "flags": 0,
        "team": None, "bot": user_json(user), "summary": "",
    }


#: Bodies of the pages alive: a page kept in the read cache is answered many times but built and encoded once.
_BODIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def messages_body(bundle) -> bytes:
    """The JSON body of a page of messages. A bundle never changes once built (a kept page's is answered to every
    viewer it may be, app.services.messages), so neither does its body."""
    body = _BODIES.get(bundle)
    if body is None:
        body = _BODIES[bundle] = json_bytes([message_json(m, bundle) for m in bundle.messages])
    return body
