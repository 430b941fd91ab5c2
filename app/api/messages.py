"""Messages, reactions and pins: Discord's routes of https://discord.com/developers/docs/resources/message."""
from __future__ import annotations

from datetime import datetime, timezone

from flask import Response, request

from app.api import (
    attachment_links,
    audit_reason,
    current_user,
    db,
    parse_body,
    query_int,
    query_snowflake,
    read_path,
    resources,
    route,
)
from app.api.bodies import MESSAGE_JSON_LIMIT
from app.api.json import encoded_json_response, json_response, no_content
from app.api.routes import NO_CONTENT, OWN_BUCKET, TIMESTAMP, Query, limit_query, ok, snowflake_query
from app.api.schemas import BulkDelete, MessageCreate, MessageEdit
from app.api.serializers import messages_body
from app.api.uploads import uploads
from app.errors import InvalidForm
from app.events import relay
from app.services.attachments import AttachmentService
from app.services.channel_writes import ChannelWrites
from app.services.dispatch import Dispatch
from app.services.messages import MessageHistory, MessageLookup, MessageService
from app.services.pins import PinService
from app.services.reactions import ReactionService
from app.services.threads import ThreadService
from app.services.wire import message_json, timestamp, user_json

LEGACY_PINS_LIMIT = 50


def _lookup() -> MessageLookup:
    return MessageLookup(db(), resources().message_store, read_path(), attachment_links())


def _writes() -> ChannelWrites:
    res = resources()
    return ChannelWrites(res.engine, res.message_store, committed=relay.wake,
                         record_events=res.settings.events_enabled)


def _messages() -> MessageService:
    res = resources()
    return MessageService(_lookup(), res.ids, _writes(), Dispatch(res.ids),
                          nonce_ttl_seconds=res.settings.nonce_ttl_seconds,
                          attachments=AttachmentService(res.blob_store, res.ids),
                          threads=ThreadService(db(), res.ids, events=res.session_events(), store=res.message_store))


def _reactions() -> ReactionService:
    return ReactionService(_lookup(), _writes(), Dispatch(resources().ids))


def _pins() -> PinService:
    res = resources()
    return PinService(_lookup(), _writes(), Dispatch(res.ids), max_pins=res.settings.max_pins_per_channel)


@route("/channels/<channel_id>/messages", "GET", summary='Messages, newest first, in every cursor mode',
       responses=ok("Message"),
       query=(limit_query(50, 100), snowflake_query("before"), snowflake_query("after"), snowflake_query("around")),
       list_of=True, rate_limit=OWN_BUCKET, public=False)
def list_messages(channel_id: int):
    limit = query_int("limit", 50, 1, 100)
    cursors = {name: query_snowflake(name) for name in ("before", "after", "around")}
    given = [name for name, value in cursors.items() if value is not None]
    if len(given) > 1:
        raise InvalidForm.field(given[1], "MESSAGE_HISTORY_CURSOR_EXCLUSIVE",
                                "Only one of before, after and around may be passed.")
    bundle = MessageHistory(_lookup()).list_messages(current_user(), channel_id, limit=limit, **cursors)
    return encoded_json_response(messages_body(bundle))


@route("/channels/<channel_id>/messages/<message_id>", "GET", summary="Get a message", responses=ok("Message"),
       rate_limit=OWN_BUCKET, public=False)
def get_message(channel_id: int, message_id: int):
    bundle = _messages().get_message(current_user(), channel_id, message_id)
    return json_response(message_json(bundle.messages[0], bundle))


@route("/channels/<channel_id>/messages", "POST", summary="Send a message", responses=ok("Message"), body=MessageCreate,
       rate_limit="messages.create", public=False, json_limit=MESSAGE_JSON_LIMIT, accepts_files=True)
def create_message(channel_id: int):
    body = parse_body(MessageCreate)
    bundle = _messages().create_message(current_user(), channel_id, body.fields(), uploads())
    payload = message_json(bundle.messages[0], bundle)
    if bundle.nonce is not None:
        payload["nonce"] = bundle.nonce
    return json_response(payload)


@route("/channels/<channel_id>/messages/<message_id>", "PATCH", summary="Edit a message", responses=ok("Message"),
       body=MessageEdit, rate_limit=OWN_BUCKET, public=False, json_limit=MESSAGE_JSON_LIMIT, accepts_files=True)
def edit_message(channel_id: int, message_id: int):
    body = parse_body(MessageEdit)
    bundle = _messages().edit_message(current_user(), channel_id, message_id, body.fields(), uploads())
    return json_response(message_json(bundle.messages[0], bundle))


@route("/channels/<channel_id>/messages/<message_id>", "DELETE", summary="Delete a message", responses=NO_CONTENT,
       rate_limit="messages.delete", public=False)
def delete_message(channel_id: int, message_id: int):
    _messages().delete_message(current_user(), channel_id, message_id, reason=audit_reason())
    return no_content()


@route("/channels/<channel_id>/messages/bulk-delete", "POST", summary="Delete 2 to 100 messages", responses=NO_CONTENT,
       body=BulkDelete, rate_limit=OWN_BUCKET, public=False)
def bulk_delete_messages(channel_id: int):
    body = parse_body(BulkDelete)
    _messages().bulk_delete(current_user(), channel_id, body.messages, reason=audit_reason())
    return no_content()


# -- reactions ----------------------------------------------------------------------------------------------

@route("/channels/<channel_id>/messages/<message_id>/reactions/<emoji>/@me", "PUT", summary="React",
       responses=NO_CONTENT, rate_limit="reactions", public=False)
def add_reaction(channel_id: int, message_id: int, emoji: str):
    _reactions().add_reaction(current_user(), channel_id, message_id, emoji)
    return no_content()


@route("/channels/<channel_id>/messages/<message_id>/reactions/<emoji>/@me", "DELETE",
       summary="Remove the caller's reaction", responses=NO_CONTENT, rate_limit="reactions", public=False)
def remove_own_reaction(channel_id: int, message_id: int, emoji: str):
    _reactions().remove_reaction(current_user(), channel_id, message_id, emoji, current_user().id)
    return no_content()


@route("/channels/<channel_id>/messages/<message_id>/reactions/<emoji>/<user_id>", "DELETE",
       summary="Remove a user's reaction", responses=NO_CONTENT, rate_limit="reactions", public=False)
def remove_user_reaction(channel_id: int, message_id: int, emoji: str, user_id: int):
    _reactions().remove_reaction(current_user(), channel_id, message_id, emoji, user_id)
    return no_content()


@route("/channels/<channel_id>/messages/<message_id>/reactions/<emoji>", "GET",
       summary="Users who reacted with an emoji", responses=ok("User"),
       query=(limit_query(25, 100), snowflake_query("after"), Query("type", {"type": "integer", "enum": [0, 1]})),
       list_of=True, rate_limit="reactions", public=False)
def list_reaction_users(channel_id: int, message_id: int, emoji: str):
    limit = query_int("limit", 25, 1, 100)
    after = query_snowflake("after")
    burst = query_int("type", 0, 0, 1) == 1
    users = _reactions().reaction_users(current_user(), channel_id, message_id, emoji, after=after, limit=limit,
                                        burst=burst)
    return json_response([user_json(u) for u in users])


@route("/channels/<channel_id>/messages/<message_id>/reactions", "DELETE", summary="Remove every reaction",
       responses=NO_CONTENT, rate_limit="reactions", public=False)
def clear_reactions(channel_id: int, message_id: int):
    _reactions().clear_reactions(current_user(), channel_id, message_id)
    return no_content()


@route("/channels/<channel_id>/messages/<message_id>/reactions/<emoji>", "DELETE",
       summary="Remove every reaction of an emoji", responses=NO_CONTENT, rate_limit="reactions", public=False)
def clear_emoji_reactions(channel_id: int, message_id: int, emoji: str):
    _reactions().clear_reactions(current_user(), channel_id, message_id, emoji)
    return no_content()


# -- pins ---------------------------------------------------------------------------------------------------

def _pinned_before() -> datetime | None:
    raw = request.args.get("before")
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidForm.field(
            "before", "DATE_TYPE_PARSE", f'Could not parse "{raw[:64]}". Should be ISO8601.') from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        # In UTC the time falls outside the years a datetime holds: it is before, or after, every pin.
        return (datetime.min if moment.year == datetime.min.year else datetime.max).replace(tzinfo=timezone.utc)


@route("/channels/<channel_id>/messages/pins", "GET", summary='Pinned messages, newest pin first',
       responses=ok("PinPage"),
       query=(limit_query(50, 50), Query("before", TIMESTAMP, "Pins pinned before this time.")), rate_limit=OWN_BUCKET,
       public=False)
def list_pins(channel_id: int):
    limit = query_int("limit", 50, 1, 50)
    page = _pins().list_pins(current_user(), channel_id, before=_pinned_before(), limit=limit)
    items = [{"pinned_at": timestamp(pin.pinned_at), "message": message_json(message, page.bundle)}
             for pin, message in zip(page.pins, page.bundle.messages)]
    return json_response({"items": items, "has_more": page.has_more})


@route("/channels/<channel_id>/pins", "GET", summary="Pinned messages (the pre-2025 route)", responses=ok("Message"),
       list_of=True, rate_limit=OWN_BUCKET, public=False)
def list_pins_legacy(channel_id: int):
    page = _pins().list_pins(current_user(), channel_id, before=None, limit=LEGACY_PINS_LIMIT)
    return encoded_json_response(messages_body(page.bundle))


def _set_pinned(channel_id: int, message_id: int, pinned: bool) -> Response:
    _pins().set_pinned(current_user(), channel_id, message_id, pinned, reason=audit_reason())
    return no_content()


@route("/channels/<channel_id>/messages/pins/<message_id>", "PUT", summary="Pin a message", responses=NO_CONTENT,
       rate_limit=OWN_BUCKET, public=False)
def pin_message(channel_id: int, message_id: int):
    return _set_pinned(channel_id, message_id, True)


@route("/channels/<channel_id>/messages/pins/<message_id>", "DELETE", summary="Unpin a message", responses=NO_CONTENT,
       rate_limit=OWN_BUCKET, public=False)
def unpin_message(channel_id: int, message_id: int):
    return _set_pinned(channel_id, message_id, False)


@route("/channels/<channel_id>/pins/<message_id>", "PUT", summary="Pin a message (the pre-2025 route)",
       responses=NO_CONTENT, rate_limit=OWN_BUCKET, public=False)
def pin_message_legacy(channel_id: int, message_id: int):
    return _set_pinned(channel_id, message_id, True)


@route("/channels/<channel_id>/pins/<message_id>", "DELETE", summary="Unpin a message (the pre-2025 route)",
       responses=NO_CONTENT, rate_limit=OWN_BUCKET, public=False)
def unpin_message_legacy(channel_id: int, message_id: int):
    return _set_pinned(channel_id, message_id, False)
