"""Channels and their permission overwrites."""
from __future__ import annotations

from app.api import audit_reason, current_user, db, parse_body, resources, route
from app.api.json import json_response, no_content
from app.api.routes import NO_CONTENT, OWN_BUCKET, ok
from app.api.schemas import NON_THREAD_EDIT_FIELDS, THREAD_EDIT_FIELDS, ChannelEdit, OverwriteEdit
from app.api.threads import threads
from app.domain import THREAD_TYPES, ChannelType
from app.errors import InvalidForm
from app.services.channels import ChannelService
from app.services.direct import DirectService
from app.services.typing import TypingService
from app.services.wire import channel_json, dm_channel_json


def _channels() -> ChannelService:
    res = resources()
    return ChannelService(db(), res.ids, res.message_store, events=res.session_events(), blobs=res.blob_store)


@route("/channels/<channel_id>", "GET", summary="Get a channel", responses=ok("Channel"), rate_limit=OWN_BUCKET,
       public=False)
def get_channel(channel_id: int):
    user = current_user()
    channel = _channels().get_channel(user, channel_id)
    if channel.type == ChannelType.DM:
        res = resources()
        recipients = DirectService(db(), res.ids, events=res.session_events()).recipients(user, channel)
        return json_response(dm_channel_json(channel, recipients))
    if channel.type in THREAD_TYPES:
        return json_response(threads().json(channel))
    return json_response(channel_json(channel))


def _refuse_fields(fields: dict, names, message: str) -> None:
    given = [name for name in names if fields.get(name) is not None]
    if given:
        raise InvalidForm(errors={name: {"_errors": [{"code": "CHANNEL_FIELD_INVALID", "message": message}]}
                                  for name in given})


@route("/channels/<channel_id>", "PATCH", summary="Edit a channel", responses=ok("Channel"), body=ChannelEdit,
       rate_limit=OWN_BUCKET, public=False)
def edit_channel(channel_id: int):
    body = parse_body(ChannelEdit)
    fields = body.model_dump(exclude_unset=True)
    if body.permission_overwrites is not None:
        fields["permission_overwrites"] = [o.as_dict() for o in body.permission_overwrites]
    user = current_user()
    if _channels().get_channel(user, channel_id).type in THREAD_TYPES:
        _refuse_fields(fields, NON_THREAD_EDIT_FIELDS, "Threads do not have this field.")
        return json_response(threads().edit(user, channel_id, fields, reason=audit_reason()))
    _refuse_fields(fields, THREAD_EDIT_FIELDS, "Only threads have this field.")
    return json_response(channel_json(_channels().edit_channel(user, channel_id, fields, reason=audit_reason())))


@route("/channels/<channel_id>", "DELETE", summary="Delete a channel", responses=ok("Channel"), rate_limit=OWN_BUCKET,
       public=False)
def delete_channel(channel_id: int):
    user = current_user()
    if _channels().get_channel(user, channel_id).type in THREAD_TYPES:
        return json_response(threads().delete(user, channel_id, reason=audit_reason()))
    return json_response(channel_json(_channels().delete_channel(user, channel_id, reason=audit_reason())))


@route("/channels/<channel_id>/permissions/<overwrite_id>", "PUT", summary="Set a permission overwrite",
       responses=NO_CONTENT, body=OverwriteEdit, rate_limit=OWN_BUCKET, public=False)
def put_overwrite(channel_id: int, overwrite_id: int):
    body = parse_body(OverwriteEdit)
    _channels().put_overwrite(current_user(), channel_id, overwrite_id, body.type, body.allow or 0, body.deny or 0,
                              reason=audit_reason())
    return no_content()


@route("/channels/<channel_id>/permissions/<overwrite_id>", "DELETE", summary="Delete a permission overwrite",
       responses=NO_CONTENT, rate_limit=OWN_BUCKET, public=False)
def delete_overwrite(channel_id: int, overwrite_id: int):
    _channels().delete_overwrite(current_user(), channel_id, overwrite_id, reason=audit_reason())
    return no_content()


@route("/channels/<channel_id>/typing", "POST", summary="Show the typing indicator", responses=NO_CONTENT,
       rate_limit=OWN_BUCKET, public=False)
def trigger_typing(channel_id: int):
    res = resources()
    TypingService(db(), events=res.session_events()).start_typing(current_user(), channel_id)
    return no_content()
