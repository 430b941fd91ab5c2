"""Users and the bot's application."""
from __future__ import annotations

from app.api import current_user, db, route
from app.api.json import json_response
from app.api.serializers import application_json, user_json
from app.errors import UnknownUser
from models import User


@route("/users/@me", ["GET"])
def get_current_user():
    return json_response(user_json(current_user()))


@route("/oauth2/applications/@me", ["GET"])
def get_current_application():
    return json_response(application_json(current_user()))


@route("/users/<user_id>", ["GET"])
def get_user(user_id: int):
    user = db().get(User, user_id)
    if user is None:
        raise UnknownUser()
    return json_response(user_json(user))
