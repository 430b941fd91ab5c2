"""Guilds, roles and members."""
from __future__ import annotations

from app.api import current_user, db, parse_body, query_bool, query_int, query_snowflake, resources, route
from app.api.json import json_response, no_content
from app.api.routes import NO_CONTENT, OWN_BUCKET, boolean_query, limit_query, ok, snowflake_query
from app.api.schemas import ChannelCreate, GuildCreate, MemberAdd, RoleCreate, RoleEdit
from app.services.channels import ChannelService
from app.services.dispatch import SessionEvents
from app.services.guilds import GuildService
from app.services.wire import channel_json, guild_json, member_json, role_json


def _events() -> SessionEvents:
    return resources().session_events()


def _guilds() -> GuildService:
    return GuildService(db(), resources().ids, events=_events())


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
    channel = ChannelService(db(), resources().ids, events=_events()).create_channel(current_user(), guild_id, fields)
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
    role = _guilds().create_role(current_user(), guild_id, body.model_dump(exclude_unset=True))
    return json_response(role_json(role))


@route("/guilds/<guild_id>/roles/<role_id>", "PATCH", summary="Edit a role", responses=ok("Role"), body=RoleEdit,
       rate_limit=OWN_BUCKET, public=False)
def edit_role(guild_id: int, role_id: int):
    body = parse_body(RoleEdit)
    role = _guilds().edit_role(current_user(), guild_id, role_id, body.model_dump(exclude_unset=True))
    return json_response(role_json(role))


@route("/guilds/<guild_id>/roles/<role_id>", "DELETE", summary="Delete a role", responses=NO_CONTENT,
       rate_limit=OWN_BUCKET, public=False)
def delete_role(guild_id: int, role_id: int):
    _guilds().delete_role(current_user(), guild_id, role_id)
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


@route("/guilds/<guild_id>/members/<user_id>", "DELETE", summary="Remove a member", responses=NO_CONTENT,
       rate_limit=OWN_BUCKET, public=False)
def remove_member(guild_id: int, user_id: int):
    _guilds().remove_member(current_user(), guild_id, user_id)
    return no_content()


@route("/guilds/<guild_id>/members/<user_id>/roles/<role_id>", "PUT", summary="Give a member a role",
       responses=NO_CONTENT, rate_limit=OWN_BUCKET, public=False)
def add_member_role(guild_id: int, user_id: int, role_id: int):
    _guilds().set_member_role(current_user(), guild_id, user_id, role_id, present=True)
    return no_content()


@route("/guilds/<guild_id>/members/<user_id>/roles/<role_id>", "DELETE", summary="Take a role from a member",
       responses=NO_CONTENT, rate_limit=OWN_BUCKET, public=False)
def remove_member_role(guild_id: int, user_id: int, role_id: int):
    _guilds().set_member_role(current_user(), guild_id, user_id, role_id, present=False)
    return no_content()
