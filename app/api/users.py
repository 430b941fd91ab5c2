"""Users and the bot's application."""
from __future__ import annotations

from app.api import current_user, db, parse_body, query_bool, query_int, query_snowflake, resources, route
from app.api.json import json_response
from app.api.routes import OWN_BUCKET, Query, boolean_query, limit_query, ok, snowflake_query
from app.api.schemas import DMCreate
from app.api.serializers import application_json, user_json
from app.errors import UnknownUser
from app.services.direct import DirectService
from app.services.wire import dm_channel_json, partial_guild_json
from models import User


def _direct() -> DirectService:
    res = resources()
    return DirectService(db(), res.ids, events=res.session_events())


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


@route("/users/@me/channels", "POST", summary="Open the DM channel with a user", responses=ok("Channel"),
       body=DMCreate, rate_limit=OWN_BUCKET, public=False)
def open_dm():
    body = parse_body(DMCreate)
    channel, recipient = _direct().open_dm(current_user(), body.recipient_id)
    return json_response(dm_channel_json(channel, [recipient]))


@route("/users/@me/guilds", "GET", summary="The caller's guilds, by id", responses=ok("PartialGuild"),
       query=(snowflake_query("before"), snowflake_query("after"), limit_query(200, 200),
              Query("with_counts", boolean_query("with_counts").schema)),
       list_of=True, rate_limit=OWN_BUCKET, public=False)
def list_my_guilds():
    user = current_user()
    guilds = _direct().guilds(user, before=query_snowflake("before"), after=query_snowflake("after"),
                              limit=query_int("limit", 200, 1, 200), with_counts=query_bool("with_counts"))
    return json_response([partial_guild_json(guild, user.id, permissions, count)
                          for guild, permissions, count in guilds])
