"""Guilds, roles and members."""
from __future__ import annotations

from flask import Response

from app.api import current_user, db, parse_body, query_bool, query_int, query_snowflake, resources, route
from app.api.json import json_response
from app.api.schemas import ChannelCreate, GuildCreate, MemberAdd, RoleCreate, RoleEdit
from app.api.serializers import channel_json, guild_json, member_json, role_json
from app.services.channels import ChannelService
from app.services.guilds import GuildService


def _guilds() -> GuildService:
    return GuildService(db(), resources().ids)


def _no_content() -> Response:
    return Response(status=204)


@route("/guilds", ["POST"])
def create_guild():
    body = parse_body(GuildCreate)
    service = _guilds()
    guild = service.create_guild(current_user(), body.name)
    return json_response(guild_json(guild, service.roles(guild.id)), 201)


@route("/guilds/<guild_id>", ["GET"])
def get_guild(guild_id: int):
    with_counts = query_bool("with_counts")
    service = _guilds()
    guild, roles = service.get_guild(current_user(), guild_id)
    return json_response(guild_json(guild, roles, service.member_count(guild_id) if with_counts else None))


@route("/guilds/<guild_id>/channels", ["GET"])
def list_guild_channels(guild_id: int):
    channels = ChannelService(db(), resources().ids).guild_channels(current_user(), guild_id)
    return json_response([channel_json(c) for c in channels])


@route("/guilds/<guild_id>/channels", ["POST"])
def create_guild_channel(guild_id: int):
    body = parse_body(ChannelCreate)
    fields = body.model_dump(exclude_unset=True)
    if body.permission_overwrites is not None:
        fields["permission_overwrites"] = [o.as_dict() for o in body.permission_overwrites]
    channel = ChannelService(db(), resources().ids).create_channel(current_user(), guild_id, fields)
    return json_response(channel_json(channel), 201)


@route("/guilds/<guild_id>/roles", ["GET"])
def list_roles(guild_id: int):
    service = _guilds()
    _guild, roles = service.get_guild(current_user(), guild_id)
    return json_response([role_json(r) for r in roles])


@route("/guilds/<guild_id>/roles", ["POST"])
def create_role(guild_id: int):
    body = parse_body(RoleCreate)
    role = _guilds().create_role(current_user(), guild_id, body.model_dump(exclude_unset=True))
    return json_response(role_json(role))


@route("/guilds/<guild_id>/roles/<role_id>", ["PATCH"])
def edit_role(guild_id: int, role_id: int):
    body = parse_body(RoleEdit)
    role = _guilds().edit_role(current_user(), guild_id, role_id, body.model_dump(exclude_unset=True))
    return json_response(role_json(role))


@route("/guilds/<guild_id>/roles/<role_id>", ["DELETE"])
def delete_role(guild_id: int, role_id: int):
    _guilds().delete_role(current_user(), guild_id, role_id)
    return _no_content()


@route("/guilds/<guild_id>/members", ["GET"])
def list_members(guild_id: int):
    limit = query_int("limit", 1, 1, 1000)
    after = query_snowflake("after") or 0
    members = _guilds().list_members(current_user(), guild_id, limit=limit, after=after)
    return json_response([member_json(m) for m in members])


@route("/guilds/<guild_id>/members/<user_id>", ["GET"])
def get_member(guild_id: int, user_id: int):
    return json_response(member_json(_guilds().get_member(current_user(), guild_id, user_id)))


@route("/guilds/<guild_id>/members/<user_id>", ["PUT"])
def add_member(guild_id: int, user_id: int):
    body = parse_body(MemberAdd)
    view, created = _guilds().add_member(current_user(), guild_id, user_id, body.nick, body.roles or [])
    if not created:
        return _no_content()
    return json_response(member_json(view), 201)


@route("/guilds/<guild_id>/members/<user_id>", ["DELETE"])
def remove_member(guild_id: int, user_id: int):
    _guilds().remove_member(current_user(), guild_id, user_id)
    return _no_content()


@route("/guilds/<guild_id>/members/<user_id>/roles/<role_id>", ["PUT"])
def add_member_role(guild_id: int, user_id: int, role_id: int):
    _guilds().set_member_role(current_user(), guild_id, user_id, role_id, present=True)
    return _no_content()


@route("/guilds/<guild_id>/members/<user_id>/roles/<role_id>", ["DELETE"])
def remove_member_role(guild_id: int, user_id: int, role_id: int):
    _guilds().set_member_role(current_user(), guild_id, user_id, role_id, present=False)
    return _no_content()
