"""Threads: Discord's routes of https://discord.com/developers/docs/resources/channel (Start Thread..., thread
members, archived threads) and GET /guilds/{id}/threads/active. PATCH and DELETE /channels/{thread} are the
channel routes (app.api.channels), which hand threads to the same service."""
from __future__ import annotations

from datetime import datetime

from flask import request

from app.api import (
    audit_reason,
    current_user,
    db,
    parse_body,
    query_bool,
    query_int,
    query_snowflake,
    resources,
    route,
    snowflake_field,
)
from app.api.bodies import MESSAGE_JSON_LIMIT
from app.api.json import json_response, no_content
from app.api.messages import _messages, _pinned_before
from app.api.routes import NO_CONTENT, OWN_BUCKET, TIMESTAMP, Query, boolean_query, limit_query, ok, snowflake_query
from app.api.schemas import ThreadCreate, ThreadFromMessage
from app.api.uploads import uploads
from app.ids import MAX_SNOWFLAKE, snowflake_from_ms
from app.services.threads import ThreadService


def threads(*, with_messages: bool = False) -> ThreadService:
    res = resources()
    service = ThreadService(db(), res.ids, events=res.session_events(), store=res.message_store,
                            blobs=res.blob_store)
    if with_messages:
        service.messages = _messages()
    return service


@route("/channels/<channel_id>/messages/<message_id>/threads", "POST", summary="Start a thread from a message",
       responses=ok("Thread", 201), body=ThreadFromMessage, rate_limit=OWN_BUCKET, public=False)
def start_thread_from_message(channel_id: int, message_id: int):
    body = parse_body(ThreadFromMessage)
    thread = threads(with_messages=True).create_from_message(current_user(), channel_id, message_id,
                                                             body.model_dump(exclude_unset=True),
                                                             reason=audit_reason())
    return json_response(thread, 201)


@route("/channels/<channel_id>/threads", "POST", summary="Start a thread, or a forum or media post",
       responses=ok("Thread", 201), body=ThreadCreate, rate_limit=OWN_BUCKET, public=False,
       json_limit=MESSAGE_JSON_LIMIT, accepts_files=True)
def start_thread(channel_id: int):
    body = parse_body(ThreadCreate)
    thread = threads(with_messages=True).create(current_user(), channel_id, body.fields(), uploads(),
                                                reason=audit_reason())
    return json_response(thread, 201)


# -- members ------------------------------------------------------------------------------------------------

@route("/channels/<channel_id>/thread-members/@me", "PUT", summary="Join a thread", responses=NO_CONTENT,
       rate_limit=OWN_BUCKET, public=False)
def join_thread(channel_id: int):
    user = current_user()
    threads().add_member(user, channel_id, user.id)
    return no_content()


@route("/channels/<channel_id>/thread-members/<user_id>", "PUT", summary="Add a member to a thread",
       responses=NO_CONTENT, rate_limit=OWN_BUCKET, public=False)
def add_thread_member(channel_id: int, user_id: int):
    threads().add_member(current_user(), channel_id, user_id)
    return no_content()


@route("/channels/<channel_id>/thread-members/@me", "DELETE", summary="Leave a thread", responses=NO_CONTENT,
       rate_limit=OWN_BUCKET, public=False)
def leave_thread(channel_id: int):
    user = current_user()
    threads().remove_member(user, channel_id, user.id)
    return no_content()


@route("/channels/<channel_id>/thread-members/<user_id>", "DELETE", summary="Remove a member from a thread",
       responses=NO_CONTENT, rate_limit=OWN_BUCKET, public=False)
def remove_thread_member(channel_id: int, user_id: int):
    threads().remove_member(current_user(), channel_id, user_id)
    return no_content()


@route("/channels/<channel_id>/thread-members/<user_id>", "GET", summary="A thread member",
       responses=ok("ThreadMember"), query=(boolean_query("with_member"),), rate_limit=OWN_BUCKET, public=False)
def get_thread_member(channel_id: int, user_id: int):
    return json_response(threads().get_member(current_user(), channel_id, user_id,
                                              with_member=query_bool("with_member")))


@route("/channels/<channel_id>/thread-members", "GET", summary="A thread's members, by user id",
       responses=ok("ThreadMember"), query=(boolean_query("with_member"), snowflake_query("after"),
                                             limit_query(100, 100)),
       list_of=True, rate_limit=OWN_BUCKET, public=False)
def list_thread_members(channel_id: int):
    return json_response(threads().list_members(
        current_user(), channel_id, with_member=query_bool("with_member"), after=query_snowflake("after"),
        limit=query_int("limit", 100, 1, 100)))


# -- lists --------------------------------------------------------------------------------------------------

@route("/guilds/<guild_id>/threads/active", "GET", summary="The guild's active threads the caller can see",
       responses=ok("ThreadList"), rate_limit=OWN_BUCKET, public=False)
def active_threads(guild_id: int):
    service = threads()
    return json_response(service.page_json(service.active(current_user(), guild_id)))


def _archived(channel_id: int, kind: str):
    service = threads()
    before: datetime | int | None = _pinned_before()
    page = service.archived(current_user(), channel_id, kind=kind, before=before,
                            limit=query_int("limit", 50, 1, 100))
    return json_response({**service.page_json(page), "has_more": page.has_more})


_ARCHIVED_QUERY = (Query("before", TIMESTAMP, "Threads archived before this time."), limit_query(50, 100))


@route("/channels/<channel_id>/threads/archived/public", "GET", summary="Archived public threads, latest first",
       responses=ok("ThreadList"), query=_ARCHIVED_QUERY, rate_limit=OWN_BUCKET, public=False)
def archived_public_threads(channel_id: int):
    return _archived(channel_id, "public")


@route("/channels/<channel_id>/threads/archived/private", "GET", summary="Archived private threads, latest first",
       responses=ok("ThreadList"), query=_ARCHIVED_QUERY, rate_limit=OWN_BUCKET, public=False)
def archived_private_threads(channel_id: int):
    return _archived(channel_id, "private")


@route("/channels/<channel_id>/users/@me/threads/archived/private", "GET",
       summary="Archived private threads the caller joined, newest thread first", responses=ok("ThreadList"),
       query=(snowflake_query("before"), limit_query(50, 100)), rate_limit=OWN_BUCKET, public=False)
def joined_archived_private_threads(channel_id: int):
    service = threads()
    raw = request.args.get("before")
    before: datetime | int | None = None
    if raw is not None:
        # Discord pages this list by thread id; an ISO 8601 time (as the other lists take) is read as one too.
        if raw.isdigit():
            before = snowflake_field("before", raw)
        else:
            moment = _pinned_before()
            before = min(snowflake_from_ms(int(moment.timestamp() * 1000)), MAX_SNOWFLAKE)
    page = service.archived(current_user(), channel_id, kind="joined", before=before,
                            limit=query_int("limit", 50, 1, 100))
    return json_response({**service.page_json(page), "has_more": page.has_more})
