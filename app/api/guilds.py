"""Guilds, roles and members."""
from __future__ import annotations

from app.api import (
    audit_reason,
    current_user,
    db,
    parse_body,
    query_bool,
    query_int,
    query_snowflake,
    query_text,
    resources,
    route,
)
from app.api.json import json_response, no_content
from app.api.routes import NO_CONTENT, OWN_BUCKET, Query, boolean_query, limit_query, ok, snowflake_query
from app.api.schemas import (
    BanCreate,
    BulkBanCreate,
    ChannelCreate,
    CurrentMemberEdit,
    GuildCreate,
    MemberAdd,
    MemberEdit,
    RoleCreate,
    RoleEdit,
)
from app.errors import InvalidForm
from app.events import relay
from app.services.attachments import AttachmentService
from app.services.audit import audit_entries, audit_targets, entry_json
from app.services.channel_writes import ChannelWrites
from app.services.channels import ChannelService
from app.services.dispatch import Dispatch, SessionEvents
from app.services.guilds import GuildService
from app.services.moderation import MessagePurge, ModerationService, ban_json
from app.services.threads import archived_at, utcnow
from app.services.wire import (
    channel_json,
    guild_json,
    member_json,
    role_json,
    thread_json,
    user_json,
    webhook_json,
)


def _events() -> SessionEvents:
    return resources().session_events()


def _guilds() -> GuildService:
    return GuildService(db(), resources().ids, events=_events())


def _moderation() -> ModerationService:
    res = resources()
    writes = ChannelWrites(res.engine, res.message_store, committed=relay.wake,
                           record_events=res.settings.events_enabled)
    purge = MessagePurge(db(), res.message_store, writes, Dispatch(res.ids), AttachmentService(res.blob_store, res.ids))
    return ModerationService(db(), res.ids, events=_events(), purge=purge)


@route("/guilds", "POST", summary="Create a guild owned by the caller", responses=ok("Guild", 201), body=GuildCreate,
       rate_limit=OWN_BUCKET, public=False)
def create_guild():
    body = parse_body(GuildCreate)
    service = _guilds()
    guild = service.create_guild(current_user(), body.name)
    return json_response(guild_json(guild, service.roles(guild.id)), 201)


@route("/guilds/<guild_id>", "GET", summary="Get a guild", responses=ok("Guild"), query=(boolean_query("with_counts"),),
       rate_limit=OWN_BUCKET, public=False)
def get_guild(guild_id: int):
    with_counts = query_bool("with_counts")
    service = _guilds()
    guild, roles = service.get_guild(current_user(), guild_id)
    return json_response(guild_json(guild, roles, service.member_count(guild_id) if with_counts else None))


@route("/guilds/<guild_id>/channels", "GET", summary="List the guild's channels", responses=ok("Channel"), list_of=True,
       rate_limit=OWN_BUCKET, public=False)
def list_guild_channels(guild_id: int):
    channels = ChannelService(db(), resources().ids, events=_events()).guild_channels(current_user(), guild_id)
    return json_response([channel_json(c) for c in channels])


@route("/guilds/<guild_id>/channels", "POST", summary="Create a channel", responses=ok("Channel", 201),
       body=ChannelCreate, rate_limit=OWN_BUCKET, public=False)
def create_guild_channel(guild_id: int):
    body = parse_body(ChannelCreate)
    fields = body.model_dump(exclude_unset=True)
    if body.permission_overwrites is not None:
        fields["permission_overwrites"] = [o.as_dict() for o in body.permission_overwrites]
    channel = ChannelService(db(), resources().ids, events=_events()).create_channel(current_user(), guild_id, fields,
                                                                                     reason=audit_reason())
    return json_response(channel_json(channel), 201)


@route("/guilds/<guild_id>/roles", "GET", summary="List the guild's roles", responses=ok("Role"), list_of=True,
       rate_limit=OWN_BUCKET, public=False)
def list_roles(guild_id: int):
    service = _guilds()
    _guild, roles = service.get_guild(current_user(), guild_id)
    return json_response([role_json(r) for r in roles])


@route("/guilds/<guild_id>/roles", "POST", summary="Create a role", responses=ok("Role"), body=RoleCreate,
       rate_limit=OWN_BUCKET, public=False)
def create_role(guild_id: int):
    body = parse_body(RoleCreate)
    role = _guilds().create_role(current_user(), guild_id, body.model_dump(exclude_unset=True), reason=audit_reason())
    return json_response(role_json(role))


@route("/guilds/<guild_id>/roles/<role_id>", "PATCH", summary="Edit a role", responses=ok("Role"), body=RoleEdit,
       rate_limit=OWN_BUCKET, public=False)
def edit_role(guild_id: int, role_id: int):
    body = parse_body(RoleEdit)
    role = _guilds().edit_role(current_user(), guild_id, role_id, body.model_dump(exclude_unset=True),
                               reason=audit_reason())
    return json_response(role_json(role))


@route("/guilds/<guild_id>/roles/<role_id>", "DELETE", summary="Delete a role", responses=NO_CONTENT,
       rate_limit=OWN_BUCKET, public=False)
def delete_role(guild_id: int, role_id: int):
    _guilds().delete_role(current_user(), guild_id, role_id, reason=audit_reason())
    return no_content()


@route("/guilds/<guild_id>/members", "GET", summary='List members, ascending by user id', responses=ok("Member"),
       query=(limit_query(1, 1000), snowflake_query("after")), list_of=True, rate_limit=OWN_BUCKET, public=False)
def list_members(guild_id: int):
    limit = query_int("limit", 1, 1, 1000)
    after = query_snowflake("after") or 0
    members = _guilds().list_members(current_user(), guild_id, limit=limit, after=after)
    return json_response([member_json(m) for m in members])


@route("/guilds/<guild_id>/members/<user_id>", "GET", summary="Get a member", responses=ok("Member"),
       rate_limit=OWN_BUCKET, public=False)
def get_member(guild_id: int, user_id: int):
    return json_response(member_json(_guilds().get_member(current_user(), guild_id, user_id)))


@route("/guilds/<guild_id>/members/<user_id>", "PUT", summary="Add a member (204 when already one)",
       responses={201: "Member", 204: None}, body=MemberAdd, rate_limit=OWN_BUCKET, public=False)
def add_member(guild_id: int, user_id: int):
    body = parse_body(MemberAdd)
    view, created = _guilds().add_member(current_user(), guild_id, user_id, body.access_token, body.nick,
                                         body.roles or [])
    if not created:
        return no_content()
    return json_response(member_json(view), 201)


@route("/guilds/<guild_id>/members/<user_id>", "DELETE", summary="Kick a member (KICK_MEMBERS)", responses=NO_CONTENT,
       rate_limit=OWN_BUCKET, public=False)
def remove_member(guild_id: int, user_id: int):
    _moderation().kick(current_user(), guild_id, user_id, reason=audit_reason())
    return no_content()


@route("/guilds/<guild_id>/members/<user_id>", "PATCH", summary="Edit a member: nick, roles, timeout, mute, deaf",
       responses=ok("Member"), body=MemberEdit, rate_limit=OWN_BUCKET, public=False)
def edit_member(guild_id: int, user_id: int):
    fields = parse_body(MemberEdit).model_dump(exclude_unset=True)
    if "roles" in fields and fields["roles"] is None:
        del fields["roles"]
    view = _moderation().edit_member(current_user(), guild_id, user_id, fields, reason=audit_reason())
    return json_response(member_json(view))


@route("/guilds/<guild_id>/members/@me", "PATCH", summary="Edit the caller's own member (nick)",
       responses=ok("Member"), body=CurrentMemberEdit, rate_limit=OWN_BUCKET, public=False)
def edit_current_member(guild_id: int):
    fields = parse_body(CurrentMemberEdit).model_dump(exclude_unset=True)
    user = current_user()
    view = _moderation().edit_member(user, guild_id, user.id, fields, reason=audit_reason())
    return json_response(member_json(view))


@route("/guilds/<guild_id>/members/search", "GET", summary="Members whose username or nick starts with the query",
       responses=ok("Member"), query=(Query("query", {"type": "string", "minLength": 1, "maxLength": 100}),
                                      limit_query(1, 1000)), list_of=True, rate_limit=OWN_BUCKET, public=False)
def search_members(guild_id: int):
    limit = query_int("limit", 1, 1, 1000)
    query = query_text("query", 100)
    if not query:
        raise InvalidForm.field("query", "BASE_TYPE_REQUIRED", "This field is required")
    members = _moderation().search_members(current_user(), guild_id, query, limit)
    return json_response([member_json(m) for m in members])


# -- bans ---------------------------------------------------------------------------------------------------

@route("/guilds/<guild_id>/bans", "GET", summary="List bans, ascending by user id", responses=ok("Ban"),
       query=(limit_query(1000, 1000), snowflake_query("before"), snowflake_query("after")), list_of=True,
       rate_limit=OWN_BUCKET, public=False)
def list_bans(guild_id: int):
    limit = query_int("limit", 1000, 1, 1000)
    bans = _moderation().bans(current_user(), guild_id, before=query_snowflake("before"),
                              after=query_snowflake("after"), limit=limit)
    return json_response([ban_json(b) for b in bans])


@route("/guilds/<guild_id>/bans/<user_id>", "GET", summary="Get a ban", responses=ok("Ban"), rate_limit=OWN_BUCKET,
       public=False)
def get_ban(guild_id: int, user_id: int):
    return json_response(ban_json(_moderation().get_ban(current_user(), guild_id, user_id)))


@route("/guilds/<guild_id>/bans/<user_id>", "PUT", summary="Ban a user, purging their recent messages",
       responses=NO_CONTENT, body=BanCreate, rate_limit=OWN_BUCKET, public=False,
       query=(Query("delete_message_seconds", {"type": "integer", "minimum": 0, "maximum": 604800}),))
def create_ban(guild_id: int, user_id: int):
    body = parse_body(BanCreate)
    # Discord documents the window in the body; discord.py sends it in the query string. Both are read, the body
    # first.
    given = body.model_dump(exclude_unset=True, exclude_none=True)
    if "delete_message_seconds" in given:
        seconds = body.delete_message_seconds
    elif "delete_message_days" in given:
        seconds = body.delete_message_days * 86400
    else:
        seconds = query_int("delete_message_seconds", 0, 0, 604800)
    _moderation().ban(current_user(), guild_id, user_id, delete_message_seconds=seconds, reason=audit_reason())
    return no_content()


@route("/guilds/<guild_id>/bans/<user_id>", "DELETE", summary="Unban a user", responses=NO_CONTENT,
       rate_limit=OWN_BUCKET, public=False)
def remove_ban(guild_id: int, user_id: int):
    _moderation().unban(current_user(), guild_id, user_id, reason=audit_reason())
    return no_content()


@route("/guilds/<guild_id>/bulk-ban", "POST", summary="Ban up to 200 users", responses=ok("BulkBan"),
       body=BulkBanCreate, rate_limit=OWN_BUCKET, public=False)
def bulk_ban(guild_id: int):
    body = parse_body(BulkBanCreate)
    banned, failed = _moderation().bulk_ban(current_user(), guild_id, body.user_ids,
                                            delete_message_seconds=body.delete_message_seconds or 0,
                                            reason=audit_reason())
    return json_response({"banned_users": [str(u) for u in banned], "failed_users": [str(u) for u in failed]})


# -- the audit log --------------------------------------------------------------------------------------------

@route("/guilds/<guild_id>/audit-logs", "GET", summary="The guild's audit log, newest first (VIEW_AUDIT_LOG)",
       responses=ok("AuditLog"), query=(snowflake_query("user_id"), Query("action_type", {"type": "integer"}),
                                        snowflake_query("before"), snowflake_query("after"), limit_query(50, 100)),
       rate_limit=OWN_BUCKET, public=False)
def get_audit_log(guild_id: int):
    user_id = query_snowflake("user_id")
    action_type = query_int("action_type", 0, 0, 2**31 - 1) or None
    before, after = query_snowflake("before"), query_snowflake("after")
    limit = query_int("limit", 50, 1, 100)
    session = db()
    _guilds().require_audit_log_viewer(current_user(), guild_id)
    entries = audit_entries(session, guild_id, user_id=user_id, action_type=action_type, before=before, after=after,
                            limit=limit)
    webhooks, threads = audit_targets(session, guild_id, entries)
    # The webhooks' creators are users the page refers to as well.
    users = {u.id: u for u in _guilds().users({e.user_id for e in entries}
                                              | {e.target_id for e in entries if e.target_id is not None}
                                              | {w.user_id for w in webhooks if w.user_id is not None})}
    now = utcnow()
    session.commit()
    return json_response({
        "audit_log_entries": [entry_json(e) for e in entries], "users": [user_json(u) for u in users.values()],
        "integrations": [], "webhooks": [webhook_json(w, users.get(w.user_id)) for w in webhooks],
        "guild_scheduled_events": [],
        "threads": [thread_json(channel, thread, archived_at(channel, thread, now)) for channel, thread in threads],
        "application_commands": [], "auto_moderation_rules": []})


@route("/guilds/<guild_id>/members/<user_id>/roles/<role_id>", "PUT", summary="Give a member a role",
       responses=NO_CONTENT, rate_limit=OWN_BUCKET, public=False)
def add_member_role(guild_id: int, user_id: int, role_id: int):
    _guilds().set_member_role(current_user(), guild_id, user_id, role_id, present=True, reason=audit_reason())
    return no_content()


@route("/guilds/<guild_id>/members/<user_id>/roles/<role_id>", "DELETE", summary="Take a role from a member",
       responses=NO_CONTENT, rate_limit=OWN_BUCKET, public=False)
def remove_member_role(guild_id: int, user_id: int, role_id: int):
    _guilds().set_member_role(current_user(), guild_id, user_id, role_id, present=False, reason=audit_reason())
    return no_content()
