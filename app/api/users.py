"""Users and the bot's application."""
from __future__ import annotations

from app.api import current_user, db, route
from app.api.json import json_response
from app.api.routes import OWN_BUCKET, ok
from app.api.serializers import application_json, user_json
from app.errors import UnknownUser
from models import User


@route("/users/@me", "GET", summary="Get the authenticated user", responses=ok("User"), rate_limit=OWN_BUCKET,
       public=False)
def get_current_user():
    return json_response(user_json(current_user()))


@route("/oauth2/applications/@me", "GET", summary="Get the bot's application", responses=ok("Application"),
       rate_limit=OWN_BUCKET, public=False)
def get_current_application():
    return json_response(application_json(current_user()))


@route("/users/<user_id>", "GET", summary="Get a user", responses=ok("User"), rate_limit=OWN_BUCKET, public=False)
def get_user(user_id: int):
    user = db().get(User, user_id)
    if user is None:
        raise UnknownUser()
    return json_response(user_json(user))
