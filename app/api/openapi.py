"""The OpenAPI 3.1 document at /api/v10/openapi.json, built from the routes the app really serves.

Paths and methods come from the app's URL map, request bodies from the same pydantic schemas the handlers
parse, and the rest (query parameters, success responses) from OPERATIONS, one entry per endpoint. A route
without an entry makes building the document fail, so a new route cannot go undocumented; the test suite
builds it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app
from pydantic import BaseModel

from app.api import route
from app.api.json import json_response
from app.api.schemas import (
    BulkDelete,
    ChannelCreate,
    ChannelEdit,
    GuildCreate,
    MemberAdd,
    MessageCreate,
    MessageEdit,
    OverwriteEdit,
    RoleCreate,
    RoleEdit,
)

PREFIX = "/api/v10"
SNOWFLAKE = {"type": "string", "pattern": "^[0-9]{1,20}$", "description": "A snowflake id, as a decimal string."}
NULLABLE_SNOWFLAKE = {"anyOf": [SNOWFLAKE, {"type": "null"}]}
TIMESTAMP = {"type": "string", "format": "date-time"}


def _object(required: dict[str, Any], **optional: Any) -> dict[str, Any]:
    """An object schema; unlisted properties are allowed, since Discord adds fields over time."""
    return {"type": "object", "required": list(required), "properties": {**required, **optional}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


RESPONSE_SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": _object({"code": {"type": "integer"}, "message": {"type": "string"}},
                     errors={"type": "object", "description": "Discord's nested form errors, keyed by field path."}),
    "RateLimited": _object({"message": {"type": "string"}, "retry_after": {"type": "number", "exclusiveMinimum": 0},
                            "global": {"type": "boolean"}, "code": {"type": "integer"}}),
    "User": _object({"id": SNOWFLAKE, "username": {"type": "string"}, "discriminator": {"type": "string"},
                     "global_name": {"type": ["string", "null"]}, "avatar": {"type": ["string", "null"]}},
                    bot={"type": "boolean"}),
    "Application": _object({"id": SNOWFLAKE, "name": {"type": "string"}, "owner": _ref("User")}),
    "Role": _object({"id": SNOWFLAKE, "name": {"type": "string"}, "position": {"type": "integer"},
                     "permissions": {"type": "string", "pattern": "^[0-9]+$"}}),
    "Guild": _object({"id": SNOWFLAKE, "name": {"type": "string"}, "owner_id": SNOWFLAKE,
                      "roles": {"type": "array", "items": _ref("Role")}}),
    "Channel": _object({"id": SNOWFLAKE, "type": {"type": "integer"}, "guild_id": NULLABLE_SNOWFLAKE,
                        "permission_overwrites": {"type": "array"}}),
    "Member": _object({"user": _ref("User"), "roles": {"type": "array", "items": SNOWFLAKE},
                       "joined_at": TIMESTAMP}),
    "Message": _object({"id": SNOWFLAKE, "type": {"type": "integer"}, "channel_id": SNOWFLAKE,
                        "author": _ref("User"), "content": {"type": "string"}, "timestamp": TIMESTAMP,
                        "edited_timestamp": {"anyOf": [TIMESTAMP, {"type": "null"}]},
                        "embeds": {"type": "array"}, "attachments": {"type": "array"},
                        "components": {"type": "array"}, "mentions": {"type": "array", "items": _ref("User")},
                        "pinned": {"type": "boolean"}, "tts": {"type": "boolean"}}),
    "PinPage": _object({"items": {"type": "array", "items": _object({"pinned_at": TIMESTAMP,
                                                                      "message": _ref("Message")})},
                        "has_more": {"type": "boolean"}}),
}


@dataclass(frozen=True)
class Query:
    name: str
    schema: dict[str, Any]
    description: str = ""


def _limit(default: int, maximum: int) -> Query:
    return Query("limit", {"type": "integer", "minimum": 1, "maximum": maximum, "default": default})


@dataclass(frozen=True)
class Operation:
    summary: str
    #: status -> response schema name, or None for an empty body (204).
    success: dict[int, str | None]
    body: type[BaseModel] | None = None
    query: tuple[Query, ...] = ()
    list_of: bool = False  # the success body is an array of the success schema
    public: bool = False


def _ok(schema: str | None, status: int = 200) -> dict[int, str | None]:
    return {status: schema}


NO_CONTENT = _ok(None, 204)
OPERATIONS: dict[str, Operation] = {
    "get_current_user": Operation("Get the authenticated user", _ok("User")),
    "get_current_application": Operation("Get the bot's application", _ok("Application")),
    "get_user": Operation("Get a user", _ok("User")),
    "create_guild": Operation("Create a guild owned by the caller", _ok("Guild", 201), GuildCreate),
    "get_guild": Operation("Get a guild", _ok("Guild"), query=(
        Query("with_counts", {"type": "string", "enum": ["true", "True", "1", "false", "False", "0"]}),)),
    "list_guild_channels": Operation("List the guild's channels", _ok("Channel"), list_of=True),
    "create_guild_channel": Operation("Create a channel", _ok("Channel", 201), ChannelCreate),
    "list_roles": Operation("List the guild's roles", _ok("Role"), list_of=True),
    "create_role": Operation("Create a role", _ok("Role"), RoleCreate),
    "edit_role": Operation("Edit a role", _ok("Role"), RoleEdit),
    "delete_role": Operation("Delete a role", NO_CONTENT),
    "list_members": Operation("List members, ascending by user id", _ok("Member"), list_of=True, query=(
        _limit(1, 1000), Query("after", SNOWFLAKE))),
    "get_member": Operation("Get a member", _ok("Member")),
    "add_member": Operation("Add a member (204 when already one)", {201: "Member", 204: None}, MemberAdd),
    "remove_member": Operation("Remove a member", NO_CONTENT),
    "add_member_role": Operation("Give a member a role", NO_CONTENT),
    "remove_member_role": Operation("Take a role from a member", NO_CONTENT),
    "get_channel": Operation("Get a channel", _ok("Channel")),
    "edit_channel": Operation("Edit a channel", _ok("Channel"), ChannelEdit),
    "delete_channel": Operation("Delete a channel", _ok("Channel")),
    "put_overwrite": Operation("Set a permission overwrite", NO_CONTENT, OverwriteEdit),
    "delete_overwrite": Operation("Delete a permission overwrite", NO_CONTENT),
    "list_messages": Operation("Messages, newest first, in every cursor mode", _ok("Message"), list_of=True, query=(
        _limit(50, 100), Query("before", SNOWFLAKE), Query("after", SNOWFLAKE), Query("around", SNOWFLAKE))),
    "get_message": Operation("Get a message", _ok("Message")),
    "create_message": Operation("Send a message", _ok("Message"), MessageCreate),
    "edit_message": Operation("Edit a message", _ok("Message"), MessageEdit),
    "delete_message": Operation("Delete a message", NO_CONTENT),
    "bulk_delete_messages": Operation("Delete 2 to 100 messages", NO_CONTENT, BulkDelete),
    "add_reaction": Operation("React", NO_CONTENT),
    "remove_own_reaction": Operation("Remove the caller's reaction", NO_CONTENT),
    "remove_user_reaction": Operation("Remove a user's reaction", NO_CONTENT),
    "list_reaction_users": Operation("Users who reacted with an emoji", _ok("User"), list_of=True, query=(
        _limit(25, 100), Query("after", SNOWFLAKE), Query("type", {"type": "integer", "enum": [0, 1]}))),
    "clear_reactions": Operation("Remove every reaction", NO_CONTENT),
    "clear_emoji_reactions": Operation("Remove every reaction of an emoji", NO_CONTENT),
    "list_pins": Operation("Pinned messages, newest pin first", _ok("PinPage"), query=(
        _limit(50, 50), Query("before", TIMESTAMP, "Pins pinned before this time."))),
    "list_pins_legacy": Operation("Pinned messages (the pre-2025 route)", _ok("Message"), list_of=True),
    "pin_message": Operation("Pin a message", NO_CONTENT),
    "unpin_message": Operation("Unpin a message", NO_CONTENT),
    "pin_message_legacy": Operation("Pin a message (the pre-2025 route)", NO_CONTENT),
    "unpin_message_legacy": Operation("Unpin a message (the pre-2025 route)", NO_CONTENT),
    "get_openapi": Operation("This document", _ok(None, 200), public=True),
}

#: Errors any operation may answer, in Discord's form; 429 comes from the rate limits (Discord's, with
#: ``X-RateLimit-*`` headers).
ERROR_RESPONSES = {
    "400": "Invalid form body (50035), invalid JSON (50109), or a rule of the request broken",
    "401": "No valid token (401: Unauthorized)",
    "403": "Missing access (50001) or missing permissions (50013)",
    "404": "Unknown resource (10003 channel, 10004 guild, 10008 message, ...)",
    "413": "Request entity too large (40005)",
    "503": "A backing store is unavailable; retry after the Retry-After header's seconds",
}
_PATH_PARAMETER = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")


class UndocumentedRoute(RuntimeError):
    pass


def _content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _path_parameter(name: str) -> dict[str, Any]:
    schema = {"type": "string", "minLength": 1} if name == "emoji" else SNOWFLAKE
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _responses(operation: Operation) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, schema in operation.success.items():
        if schema is None and status == 204:
            responses[str(status)] = {"description": "No content"}
            continue
        body = {"type": "object"} if schema is None else _ref(schema)
        responses[str(status)] = {"description": operation.summary,
                                  "content": _content({"type": "array", "items": body} if operation.list_of else body)}
    if not operation.public:
        responses.update({status: {"$ref": f"#/components/responses/{status}"} for status in ERROR_RESPONSES})
    responses["429"] = {"$ref": "#/components/responses/429"}
    return responses


def _error_responses() -> dict[str, Any]:
    responses = {status: {"description": description, "content": _content(_ref("Error"))}
                 for status, description in ERROR_RESPONSES.items()}
    responses["429"] = {
        "description": "Rate limited: wait retry_after seconds",
        "headers": {name: {"schema": {"type": "string"}} for name in ("Retry-After", "Via", "X-RateLimit-Scope")},
        "content": _content(_ref("RateLimited")),
    }
    return responses


def _request_schemas() -> tuple[dict[str, Any], dict[str, str]]:
    """Components for every request schema (with their nested models), and the reference of each."""
    components: dict[str, Any] = {}
    references: dict[str, str] = {}
    for operation in OPERATIONS.values():
        if operation.body is None or operation.body.__name__ in references:
            continue
        schema = operation.body.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[operation.body.__name__] = schema
        references[operation.body.__name__] = f"#/components/schemas/{operation.body.__name__}"
    return components, references


def build_document(app: Flask) -> dict[str, Any]:
    """The document for every /api/v10 route of ``app``; UndocumentedRoute names any route without an entry."""
    request_components, references = _request_schemas()
    paths: dict[str, dict[str, Any]] = {}
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(PREFIX + "/"):
            continue
        endpoint = rule.endpoint.rsplit(".", 1)[-1]
        operation = OPERATIONS.get(endpoint)
        if operation is None:
            missing.append(f"{rule.rule} ({endpoint})")
            continue
        path = _PATH_PARAMETER.sub(r"{\1}", rule.rule[len(PREFIX):])
        parameters = [_path_parameter(name) for name in _PATH_PARAMETER.findall(rule.rule)]
        parameters += [{"name": q.name, "in": "query", "required": False, "schema": q.schema,
                        **({"description": q.description} if q.description else {})} for q in operation.query]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            entry: dict[str, Any] = {"operationId": endpoint, "summary": operation.summary,
                                     "parameters": parameters, "responses": _responses(operation)}
            if operation.public:
                entry["security"] = []
            if operation.body is not None:
                entry["requestBody"] = {"required": True,
                                        "content": _content({"$ref": references[operation.body.__name__]})}
            paths.setdefault(path, {})[method.lower()] = entry
    if missing:
        raise UndocumentedRoute("routes without an entry in app.api.openapi.OPERATIONS: " + ", ".join(missing))
    return {
        "openapi": "3.1.0",
        "info": {"title": "chatstore", "version": "10",
                 "description": "Chat-message service speaking a subset of Discord's HTTP API v10 "
                                "(https://discord.com/developers/docs): users, guilds, roles, members, channels, "
                                "permission overwrites, messages, reactions and pins."},
        "servers": [{"url": PREFIX}],
        "security": [{"BotToken": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"BotToken": {"type": "apiKey", "in": "header", "name": "Authorization",
                                             "description": "Bot <token>"}},
            "schemas": {**RESPONSE_SCHEMAS, **request_components},
            "responses": _error_responses(),
        },
    }


@route("/openapi.json", ["GET"], public=True)
def get_openapi():
    document = current_app.extensions.get("openapi")
    if document is None:
        document = current_app.extensions["openapi"] = build_document(current_app)
    return json_response(document)
