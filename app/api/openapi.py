"""The OpenAPI 3.1 document at /api/v10/openapi.json, built from the routes the app really serves.

Paths and methods come from the app's URL map; each operation from what its route declares (app.api.routes):
summary, query parameters, success responses, and the request body as the same pydantic schema the handler
parses. A URL rule without a declared route makes building the document fail; the test suite builds it.
"""
from __future__ import annotations

import re
from typing import Any

from flask import Flask, current_app

from app.api import route
from app.api.json import json_response
from app.api.routes import (
    AUTOMATIC_METHODS,
    OWN_BUCKET,
    ROUTES,
    SNOWFLAKE,
    TIMESTAMP,
    RouteSpec,
    ok,
)

PREFIX = "/api/v10"
NULLABLE_SNOWFLAKE = {"anyOf": [SNOWFLAKE, {"type": "null"}]}


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
    # A guild channel has guild_id and permission_overwrites; a DM (type 1) has recipients instead.
    "Channel": _object({"id": SNOWFLAKE, "type": {"type": "integer"}}, guild_id=NULLABLE_SNOWFLAKE,
                       permission_overwrites={"type": "array"}, recipients={"type": "array", "items": _ref("User")}),
    "PartialGuild": _object({"id": SNOWFLAKE, "name": {"type": "string"}, "owner": {"type": "boolean"},
                             "permissions": {"type": "string", "pattern": "^[0-9]+$"}},
                            approximate_member_count={"type": "integer"}),
    "Member": _object({"user": _ref("User"), "roles": {"type": "array", "items": SNOWFLAKE},
                       "joined_at": TIMESTAMP}),
    "Ban": _object({"user": _ref("User"), "reason": {"type": ["string", "null"]}}),
    "BulkBan": _object({"banned_users": {"type": "array", "items": SNOWFLAKE},
                        "failed_users": {"type": "array", "items": SNOWFLAKE}}),
    "AuditLog": _object({"audit_log_entries": {"type": "array", "items": _object({
        "id": SNOWFLAKE, "user_id": SNOWFLAKE, "action_type": {"type": "integer"},
        "target_id": NULLABLE_SNOWFLAKE, "changes": {"type": "array"}, "reason": {"type": ["string", "null"]}})},
        "users": {"type": "array", "items": _ref("User")}, "integrations": {"type": "array"},
        "webhooks": {"type": "array"}, "guild_scheduled_events": {"type": "array"}, "threads": {"type": "array"},
        "application_commands": {"type": "array"}, "auto_moderation_rules": {"type": "array"}}),
    "Message": _object({"id": SNOWFLAKE, "type": {"type": "integer"}, "channel_id": SNOWFLAKE,
                        "author": _ref("User"), "content": {"type": "string"}, "timestamp": TIMESTAMP,
                        "edited_timestamp": {"anyOf": [TIMESTAMP, {"type": "null"}]},
                        "embeds": {"type": "array"}, "attachments": {"type": "array"},
                        "components": {"type": "array"}, "mentions": {"type": "array", "items": _ref("User")},
                        "pinned": {"type": "boolean"}, "tts": {"type": "boolean"}}),
    # An incoming webhook; token and url only in the answer to its creation (only a hash of the token is kept).
    "Webhook": _object({"id": SNOWFLAKE, "type": {"type": "integer", "const": 1}, "guild_id": SNOWFLAKE,
                        "channel_id": SNOWFLAKE, "name": {"type": "string"},
                        "avatar": {"type": ["string", "null"]}},
                       user=_ref("User"), token={"type": "string"}, url={"type": "string"},
                       application_id={"type": ["string", "null"]}),
    "PinPage": _object({"items": {"type": "array", "items": _object({"pinned_at": TIMESTAMP,
                                                                      "message": _ref("Message")})},
                        "has_more": {"type": "boolean"}}),
    "Thread": _object({"id": SNOWFLAKE, "type": {"type": "integer", "enum": [10, 11, 12]}, "guild_id": SNOWFLAKE,
                       "parent_id": SNOWFLAKE, "owner_id": SNOWFLAKE, "name": {"type": "string"},
                       "thread_metadata": _object({"archived": {"type": "boolean"},
                                                   "auto_archive_duration": {"type": "integer"},
                                                   "archive_timestamp": TIMESTAMP, "locked": {"type": "boolean"}},
                                                  invitable={"type": "boolean"}, create_timestamp=TIMESTAMP),
                       "message_count": {"type": "integer"}, "member_count": {"type": "integer"}},
                      message=_ref("Message")),
    "ThreadMember": _object({"id": SNOWFLAKE, "user_id": SNOWFLAKE, "join_timestamp": TIMESTAMP,
                             "flags": {"type": "integer"}}, member={"type": "object"}),
    "ThreadList": _object({"threads": {"type": "array", "items": _ref("Thread")},
                           "members": {"type": "array", "items": _ref("ThreadMember")}},
                          has_more={"type": "boolean"}),
    "SearchResults": _object({"total_results": {"type": "integer", "minimum": 0},
                              "messages": {"type": "array", "items": {"type": "array", "items": _ref("Message")}},
                              "threads": {"type": "array"}, "members": {"type": "array"},
                              "doing_deep_historical_index": {"type": "boolean"}}),
    "SearchIndexNotReady": _object({"code": {"type": "integer", "const": 110000}, "message": {"type": "string"},
                                    "retry_after": {"type": "number"},
                                    "documents_indexed": {"type": "integer", "minimum": 0}}),
}


#: Errors any operation may answer, in Discord's form; 429 comes from the rate limits (Discord's, with
#: ``X-RateLimit-*`` headers).
ERROR_RESPONSES = {
    "400": "Invalid form body (50035), invalid JSON (50109), or a rule of the request broken",
    "401": "No valid token (401: Unauthorized), or a webhook's token that is not its own (50027)",
    "403": "Missing access (50001), missing permissions (50013), or an invalid OAuth2 access token (50025)",
    "404": "Unknown resource (10003 channel, 10004 guild, 10008 message, 10015 webhook, ...)",
    "413": "Request entity too large (40005)",
    "503": "A backing store is unavailable; retry after the Retry-After header's seconds",
}
_PATH_PARAMETER = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")


class UndocumentedRoute(RuntimeError):
    pass


def _content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _path_parameter(name: str) -> dict[str, Any]:
    schema = {"type": "string", "minLength": 1} if name in ("emoji", "token") else SNOWFLAKE
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _responses(operation: RouteSpec) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, schema in operation.responses.items():
        if schema is None and status == 204:
            responses[str(status)] = {"description": "No content"}
            continue
        if schema is not None and schema not in RESPONSE_SCHEMAS:
            raise UndocumentedRoute(f"{operation.endpoint}: no response schema {schema!r} in RESPONSE_SCHEMAS")
        body = {"type": "object"} if schema is None else _ref(schema)
        responses[str(status)] = {"description": operation.summary,
                                  "content": _content({"type": "array", "items": body} if operation.list_of else body)}
    # A route reached with a webhook's token in its path, instead of an Authorization header, answers the same
    # errors (401 for a wrong token, 404 for an unknown webhook).
    if not operation.public or "<token>" in operation.rule:
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
    for operation in ROUTES:
        if operation.body is None or operation.body.__name__ in references:
            continue
        schema = operation.body.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        # Discord's documented fields that the route refuses (app.api.schemas): every body must say which.
        schema["x-discord-unsupported"] = sorted(operation.body.unsupported)
        components[operation.body.__name__] = schema
        references[operation.body.__name__] = f"#/components/schemas/{operation.body.__name__}"
    return components, references


def build_document(app: Flask) -> dict[str, Any]:
    """The document for every /api/v10 URL rule of ``app``, from the spec its route declared;
    UndocumentedRoute names any rule without one."""
    request_components, references = _request_schemas()
    paths: dict[str, dict[str, Any]] = {}
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(PREFIX + "/"):
            continue
        relative = rule.rule[len(PREFIX):]
        path = _PATH_PARAMETER.sub(r"{\1}", relative)
        path_parameters = [_path_parameter(name) for name in _PATH_PARAMETER.findall(rule.rule)]
        for method in sorted(rule.methods - AUTOMATIC_METHODS):
            operation = ROUTES.get(relative, method)
            if operation is None:
                missing.append(f"{method} {rule.rule} ({rule.endpoint})")
                continue
            parameters = path_parameters + [
                {"name": q.name, "in": "query", "required": False, "schema": q.schema,
                 **({"description": q.description} if q.description else {})} for q in operation.query]
            entry: dict[str, Any] = {"operationId": operation.endpoint, "summary": operation.summary,
                                     "parameters": parameters, "responses": _responses(operation)}
            if operation.public:
                entry["security"] = []
            if operation.body is not None:
                entry["requestBody"] = {"required": True,
                                        "content": _content({"$ref": references[operation.body.__name__]})}
            paths.setdefault(path, {})[method.lower()] = entry
    if missing:
        raise UndocumentedRoute("URL rules without a route spec (declare them with app.api.route): "
                                + ", ".join(missing))
    return {
        "openapi": "3.1.0",
        "info": {"title": "chatstore", "version": "10",
                 "description": "A message service compatible with the Discord HTTP API v10 for the routes listed here "
                                "(https://discord.com/developers/docs)."},
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


@route("/openapi.json", "GET", summary="This document", responses=ok(None), rate_limit=OWN_BUCKET, public=True)
def get_openapi():
    document = current_app.extensions.get("openapi")
    if document is None:
        document = current_app.extensions["openapi"] = build_document(current_app)
    return json_response(document)
