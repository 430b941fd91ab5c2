"""Incoming webhooks: Discord's routes of https://discord.com/developers/docs/resources/webhook.

The routes with ``{token}`` in their path take no Authorization header (they are ``public``): the token is the
credential, checked by the service. Executions count against a bucket per webhook ("webhooks.execute").
"""
from __future__ import annotations

from flask import request

from app.api import (
    VERSION_PREFIXES,
    audit_reason,
    current_user,
    db,
    parse_body,
    query_bool,
    query_snowflake,
    resources,
    route,
)
from app.api.bodies import MESSAGE_JSON_LIMIT
from app.api.json import json_response, no_content
from app.api.messages import _messages
from app.api.routes import NO_CONTENT, OWN_BUCKET, boolean_query, ok, snowflake_query
from app.api.schemas import WebhookCreate, WebhookEdit, WebhookExecute, WebhookMessageEdit, WebhookTokenEdit
from app.api.threads import threads
from app.api.uploads import uploads
from app.services.webhooks import WebhookService, WebhookView
from app.services.wire import message_json, webhook_json

_THREAD_QUERY = snowflake_query("thread_id")


def _webhooks() -> WebhookService:
    res = resources()
    return WebhookService(db(), res.ids, events=res.session_events(), messages=_messages(), threads=threads())


def _api_base() -> str:
    """The root of this API version as the client reached it (or under PUBLIC_BASE_URL), for a webhook's url."""
    base = resources().settings.public_base_url or request.host_url
    return base.rstrip("/") + VERSION_PREFIXES[request.blueprint]


def _json(view: WebhookView):
    return webhook_json(view.webhook, view.creator, token=view.token, api_base=_api_base())


# -- management (MANAGE_WEBHOOKS) ---------------------------------------------------------------------------

@route("/channels/<channel_id>/webhooks", "POST", summary="Create a webhook (its token is shown only here)",
       responses=ok("Webhook"), body=WebhookCreate, rate_limit=OWN_BUCKET, public=False)
def create_webhook(channel_id: int):
    body = parse_body(WebhookCreate)
    return json_response(_json(_webhooks().create(current_user(), channel_id, body.model_dump(),
                                                  reason=audit_reason())))


@route("/channels/<channel_id>/webhooks", "GET", summary="A channel's webhooks", responses=ok("Webhook"),
       list_of=True, rate_limit=OWN_BUCKET, public=False)
def channel_webhooks(channel_id: int):
    return json_response([_json(view) for view in _webhooks().channel_webhooks(current_user(), channel_id)])


@route("/guilds/<guild_id>/webhooks", "GET", summary="A guild's webhooks", responses=ok("Webhook"), list_of=True,
       rate_limit=OWN_BUCKET, public=False)
def guild_webhooks(guild_id: int):
    return json_response([_json(view) for view in _webhooks().guild_webhooks(current_user(), guild_id)])


@route("/webhooks/<webhook_id>", "GET", summary="Get a webhook", responses=ok("Webhook"), rate_limit=OWN_BUCKET,
       public=False)
def get_webhook(webhook_id: int):
    return json_response(_json(_webhooks().get(current_user(), webhook_id)))


@route("/webhooks/<webhook_id>", "PATCH", summary="Edit a webhook: name, channel", responses=ok("Webhook"),
       body=WebhookEdit, rate_limit=OWN_BUCKET, public=False)
def edit_webhook(webhook_id: int):
    body = parse_body(WebhookEdit)
    return json_response(_json(_webhooks().edit(current_user(), webhook_id, body.model_dump(exclude_unset=True),
                                                   reason=audit_reason())))


@route("/webhooks/<webhook_id>", "DELETE", summary="Delete a webhook", responses=NO_CONTENT, rate_limit=OWN_BUCKET,
       public=False)
def delete_webhook(webhook_id: int):
    _webhooks().delete(current_user(), webhook_id, reason=audit_reason())
    return no_content()


# -- with the token ----------------------------------------------------------------------------------------

@route("/webhooks/<webhook_id>/<token>", "GET", summary="Get a webhook with its token (no user)",
       responses=ok("Webhook"), rate_limit=OWN_BUCKET, public=True)
def get_webhook_with_token(webhook_id: int, token: str):
    return json_response(_json(_webhooks().get_with_token(webhook_id, token)))


@route("/webhooks/<webhook_id>/<token>", "PATCH", summary="Edit a webhook with its token: name",
       responses=ok("Webhook"), body=WebhookTokenEdit, rate_limit=OWN_BUCKET, public=True)
def edit_webhook_with_token(webhook_id: int, token: str):
    body = parse_body(WebhookTokenEdit)
    return json_response(_json(_webhooks().edit_with_token(webhook_id, token, body.model_dump(exclude_unset=True))))


@route("/webhooks/<webhook_id>/<token>", "DELETE", summary="Delete a webhook with its token", responses=NO_CONTENT,
       rate_limit=OWN_BUCKET, public=True)
def delete_webhook_with_token(webhook_id: int, token: str):
    _webhooks().delete_with_token(webhook_id, token)
    return no_content()


@route("/webhooks/<webhook_id>/<token>", "POST",
       summary="Execute a webhook: 200 with the message when wait=true, else 204",
       responses={200: "Message", 204: None}, body=WebhookExecute,
       query=(boolean_query("wait"), _THREAD_QUERY, boolean_query("with_components")),
       rate_limit="webhooks.execute", public=True, json_limit=MESSAGE_JSON_LIMIT, accepts_files=True)
def execute_webhook(webhook_id: int, token: str):
    wait = query_bool("wait")
    # Components are taken from every webhook; the flag asks for nothing more.
    query_bool("with_components")
    body = parse_body(WebhookExecute)
    bundle = _webhooks().execute(webhook_id, token, body.fields(), uploads(), thread_id=query_snowflake("thread_id"))
    return json_response(message_json(bundle.messages[0], bundle)) if wait else no_content()


@route("/webhooks/<webhook_id>/<token>/messages/<message_id>", "GET", summary="A message the webhook sent",
       responses=ok("Message"), query=(_THREAD_QUERY,), rate_limit=OWN_BUCKET, public=True)
def get_webhook_message(webhook_id: int, token: str, message_id: int):
    bundle = _webhooks().get_message(webhook_id, token, message_id, thread_id=query_snowflake("thread_id"))
    return json_response(message_json(bundle.messages[0], bundle))


@route("/webhooks/<webhook_id>/<token>/messages/<message_id>", "PATCH", summary="Edit a message the webhook sent",
       responses=ok("Message"), body=WebhookMessageEdit, query=(_THREAD_QUERY,), rate_limit=OWN_BUCKET,
       public=True, json_limit=MESSAGE_JSON_LIMIT, accepts_files=True)
def edit_webhook_message(webhook_id: int, token: str, message_id: int):
    body = parse_body(WebhookMessageEdit)
    bundle = _webhooks().edit_message(webhook_id, token, message_id, body.fields(), uploads(),
                                      thread_id=query_snowflake("thread_id"))
    return json_response(message_json(bundle.messages[0], bundle))


@route("/webhooks/<webhook_id>/<token>/messages/<message_id>", "DELETE",
       summary="Delete a message the webhook sent", responses=NO_CONTENT, query=(_THREAD_QUERY,),
       rate_limit="messages.delete", public=True)
def delete_webhook_message(webhook_id: int, token: str, message_id: int):
    _webhooks().delete_message(webhook_id, token, message_id, thread_id=query_snowflake("thread_id"))
    return no_content()
