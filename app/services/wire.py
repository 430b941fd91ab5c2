"""Messages in Discord's wire form (https://discord.com/developers/docs/resources/message#message-object), both ways.

The API serves :func:`message_json`; ``flask messages export`` writes the same objects and ``flask messages
import`` reads them back with :func:`message_from_json`. It lives in app.services, not app.api, because the
CLI may import services but not the HTTP layer, and both must write the very same objects.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import orjson

from app.domain import TOPIC_CHANNEL_TYPES, VOICE_CHANNEL_TYPES, MessageReferenceType, MessageType, UserSnapshot
from app.ids import InvalidSnowflake, parse_snowflake, snowflake_ms, snowflake_time
from app.messages.base import Message
from app.services.attachments import attachments_wire, records_from_wire
from app.services.emoji import emoji_from_key
from models import Channel, Guild, Role, User

if TYPE_CHECKING:
    from app.services.messages import MessageBundle

MAX_CONTENT_LENGTH = 2000
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def timestamp(value: datetime | None) -> str | None:
    """Discord's form, ``2017-07-11T17:27:07.299000+00:00``, which every client's parser accepts."""
    if value is None:
        return None
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds")


def user_json(user: User | UserSnapshot) -> dict[str, Any]:
    return {
        "id": str(user.id), "username": user.username, "discriminator": "0", "global_name": user.global_name,
        "avatar": user.avatar, "bot": user.bot, "public_flags": 0, "flags": 0,
    }


def _author_json(user_id: int, users: dict[int, User]) -> dict[str, Any]:
    user = users.get(user_id)
    if user is not None:
        return user_json(user)
    # The author's account is gone; Discord shows such messages with a placeholder user.
    return {"id": str(user_id), "username": "Deleted User", "discriminator": "0", "global_name": None,
            "avatar": None, "bot": False, "public_flags": 0, "flags": 0}


def webhook_author_json(message: Message) -> dict[str, Any]:
    """A webhook message's author as Discord shows it: the webhook's id, the name it sent under, ``bot``, the
    ``0000`` discriminator. ``avatar_url``, not a Discord key, serves back the execution's override: the service
    keeps no avatar images, so ``avatar`` (a hash of one) is null."""
    author = {"id": str(message.author_id), "username": message.webhook_username or "", "discriminator": "0000",
              "global_name": None, "avatar": None, "bot": True, "public_flags": 0, "flags": 0}
    if message.webhook_avatar_url is not None:
        author["avatar_url"] = message.webhook_avatar_url
    return author


def message_json(message: Message, bundle: MessageBundle, *, nested: bool = False) -> dict[str, Any]:
    """A message object in Discord's form, with every key discord.py reads."""
    author = (webhook_author_json(message) if message.webhook_id is not None
              else _author_json(message.author_id, bundle.users))
    body: dict[str, Any] = {
        "id": str(message.id), "type": message.type, "content": message.content,
        "channel_id": str(message.channel_id), "author": author,
        "attachments": attachments_wire(message, bundle.links),
        "embeds": orjson.loads(message.embeds_json) if message.embeds_json else [],
        "mentions": [_author_json(u, bundle.users) for u in message.mentions],
        "mention_roles": [str(r) for r in message.mention_roles], "pinned": message.pinned,
        "mention_everyone": message.mention_everyone, "tts": message.tts,
        "timestamp": timestamp(snowflake_time(message.id)), "edited_timestamp": timestamp(message.edited_at),
        "flags": message.flags,
        "components": orjson.loads(message.components_json) if message.components_json else [],
    }
    if message.webhook_id is not None:
        body["webhook_id"] = str(message.webhook_id)
    reactions = bundle.reactions.get(message.id)
    if reactions:
        body["reactions"] = [{
            "count": r.count, "count_details": {"burst": 0, "normal": r.count}, "me": r.me, "me_burst": False,
            "emoji": emoji_from_key(r.emoji).as_json(), "burst_colors": [],
        } for r in reactions]
    if message.reference_message_id is not None:
        body["message_reference"] = {
            "type": MessageReferenceType.DEFAULT, "message_id": str(message.reference_message_id),
            "channel_id": str(message.reference_channel_id or message.channel_id),
        }
        if message.reference_guild_id is not None:
            body["message_reference"]["guild_id"] = str(message.reference_guild_id)
        if not nested and message.reference_message_id in bundle.referenced:
            referenced = bundle.referenced[message.reference_message_id]
            body["referenced_message"] = None if referenced is None else message_json(referenced, bundle, nested=True)
    return body


# -- reading message objects back ---------------------------------------------------------------------------

class WireFormError(ValueError):
    """A message object that cannot be stored as given; the text names the field and the problem."""


def _snowflake(value: Any, field: str) -> int:
    """An id as Discord writes it (a string of digits); a JSON integer is accepted too, as the API does."""
    try:
        return parse_snowflake(value)
    except InvalidSnowflake:
        raise WireFormError(f"{field}: {_shown(value)} is not a snowflake") from None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 64 else text[:64] + "..."


def parse_timestamp(value: Any, field: str) -> datetime:
    """An ISO 8601 time; one without an offset is taken as UTC, as the API takes pin cursors."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    raise WireFormError(f"{field}: {value!r} is not an ISO 8601 timestamp")


def _required(body: dict[str, Any], field: str) -> Any:
    if field not in body:
        raise WireFormError(f"{field}: missing")
    return body[field]


def _typed(body: dict[str, Any], field: str, kind: type, default: Any) -> Any:
    """An optional field of one JSON type (``null`` counts as absent). bool is not accepted as an int."""
    value = body.get(field)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise WireFormError(f"{field}: expected {kind.__name__}, got {value!r}")
    return value


def message_from_json(body: Any) -> tuple[Message, datetime | None]:
    """The message a wire object describes, with its ``pinned_at`` when the object carries one.

    Reads what :func:`message_json` writes (plus ``pinned_at``, which export adds to pinned messages so pin
    order survives a round trip). Only the object's own form is checked here; whether its channel, author
    and so on exist is the caller's business. Raises :class:`WireFormError`.
    """
    if not isinstance(body, dict):
        raise WireFormError("not a JSON object")
    message_id = _snowflake(_required(body, "id"), "id")
    channel_id = _snowflake(_required(body, "channel_id"), "channel_id")
    author = _required(body, "author")
    if not isinstance(author, dict):
        raise WireFormError(f"author: expected an object, got {author!r}")
    author_id = _snowflake(_required(author, "id"), "author.id")
    content = _required(body, "content")
    if not isinstance(content, str):
        raise WireFormError(f"content: expected str, got {content!r}")
    if len(content) > MAX_CONTENT_LENGTH:
        raise WireFormError(f"content: {len(content)} characters, must be {MAX_CONTENT_LENGTH} or fewer")
    if body.get("timestamp") is not None:
        # The id is the message's time (discord.py reads created_at from it); a differing timestamp means
        # the id was minted for some other moment, and the message would land in the wrong bucket.
        moment = parse_timestamp(body["timestamp"], "timestamp")
        if (moment - _UNIX_EPOCH) // timedelta(milliseconds=1) != snowflake_ms(message_id):
            raise WireFormError(f"timestamp: {body['timestamp']} is not the time of id {message_id} "
                                f"({timestamp(snowflake_time(message_id))})")

    mentions = _typed(body, "mentions", list, [])
    if not all(isinstance(user, dict) for user in mentions):
        raise WireFormError("mentions: expected a list of user objects")
    embeds = _typed(body, "embeds", list, [])
    if not all(isinstance(embed, dict) for embed in embeds):
        raise WireFormError("embeds: expected a list of embed objects")
    reference = _typed(body, "message_reference", dict, None)
    reference_message_id = reference_channel_id = reference_guild_id = None
    if reference is not None:
        reference_message_id = _snowflake(_required(reference, "message_id"), "message_reference.message_id")
        reference_channel_id = _snowflake(reference.get("channel_id", channel_id), "message_reference.channel_id")
        if reference.get("guild_id") is not None:
            reference_guild_id = _snowflake(reference["guild_id"], "message_reference.guild_id")
    components = _typed(body, "components", list, [])
    if not all(isinstance(component, dict) for component in components):
        raise WireFormError("components: expected a list of component objects")
    attachments_json = records_from_wire(_typed(body, "attachments", list, None), WireFormError)
    webhook_id = _snowflake(body["webhook_id"], "webhook_id") if body.get("webhook_id") is not None else None
    if webhook_id is not None and webhook_id != author_id:
        raise WireFormError(f"webhook_id: {webhook_id} is not the author's id {author_id}")
    edited = body.get("edited_timestamp")
    pinned = _typed(body, "pinned", bool, False)
    pinned_at = parse_timestamp(body["pinned_at"], "pinned_at") if pinned and body.get("pinned_at") else None

    message = Message(
        id=message_id, channel_id=channel_id, author_id=author_id, content=content,
        type=_typed(body, "type", int, MessageType.DEFAULT), flags=_typed(body, "flags", int, 0),
        tts=_typed(body, "tts", bool, False), mention_everyone=_typed(body, "mention_everyone", bool, False),
        mentions=tuple(_snowflake(_required(user, "id"), "mentions[].id") for user in mentions),
        mention_roles=tuple(_snowflake(r, "mention_roles[]") for r in _typed(body, "mention_roles", list, [])),
        embeds_json=orjson.dumps(embeds).decode() if embeds else None,
        pinned=pinned,
        edited_at=parse_timestamp(edited, "edited_timestamp") if edited is not None else None,
        reference_message_id=reference_message_id, reference_channel_id=reference_channel_id,
        reference_guild_id=reference_guild_id, attachments_json=attachments_json,
        components_json=orjson.dumps(components).decode() if components else None,
        webhook_id=webhook_id,
        webhook_username=_typed(author, "username", str, None) if webhook_id is not None else None,
        webhook_avatar_url=_typed(author, "avatar_url", str, None) if webhook_id is not None else None,
    )
    return message, pinned_at


# -- metadata -----------------------------------------------------------------------------------------------

def role_json(role: Role) -> dict[str, Any]:
    return {
        "id": str(role.id), "name": role.name, "color": role.color,
        "colors": {"primary_color": role.color, "secondary_color": None, "tertiary_color": None},
        "hoist": role.hoist, "icon": None, "unicode_emoji": None, "position": role.position,
        "permissions": str(role.permissions), "managed": False, "mentionable": role.mentionable, "flags": 0,
    }


def guild_json(guild: Guild, roles: list[Role], member_count: int | None = None) -> dict[str, Any]:
    body = {
        "id": str(guild.id), "name": guild.name, "icon": None, "splash": None, "discovery_splash": None,
        "owner_id": str(guild.owner_id), "afk_channel_id": None, "afk_timeout": 300, "verification_level": 0,
        "default_message_notifications": 0, "explicit_content_filter": 0, "roles": [role_json(r) for r in roles],
        "emojis": [], "stickers": [], "features": [], "mfa_level": 0, "application_id": None,
        "system_channel_id": None, "system_channel_flags": 0, "rules_channel_id": None, "vanity_url_code": None,
        "description": None, "banner": None, "premium_tier": 0, "premium_subscription_count": 0,
        "preferred_locale": "en-US", "public_updates_channel_id": None, "nsfw_level": 0,
        "premium_progress_bar_enabled": False, "safety_alerts_channel_id": None, "incidents_data": None,
    }
    if member_count is not None:
        body["approximate_member_count"] = member_count
        body["approximate_presence_count"] = 0
    return body


def channel_json(channel: Channel) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(channel.id), "type": channel.type, "guild_id": str(channel.guild_id) if channel.guild_id else None,
        "name": channel.name, "position": channel.position,
        "permission_overwrites": [
            {"id": str(o.target_id), "type": o.type, "allow": str(o.allow), "deny": str(o.deny)}
            for o in channel.overwrites
        ],
        "parent_id": str(channel.parent_id) if channel.parent_id else None, "nsfw": channel.nsfw, "flags": 0,
    }
    if channel.type in TOPIC_CHANNEL_TYPES:
        body.update(topic=channel.topic, rate_limit_per_user=channel.rate_limit_per_user,
                    last_message_id=str(channel.last_message_id) if channel.last_message_id else None,
                    default_auto_archive_duration=1440)
    if channel.type in VOICE_CHANNEL_TYPES:
        body.update(bitrate=64000, user_limit=0, rtc_region=None, rate_limit_per_user=channel.rate_limit_per_user,
                    last_message_id=str(channel.last_message_id) if channel.last_message_id else None)
    return body


def dm_channel_json(channel: Channel, recipients: list[User]) -> dict[str, Any]:
    """A DM channel (type 1) as Discord serves it: no guild, no name, the other user in ``recipients``."""
    return {"id": str(channel.id), "type": channel.type,
            "last_message_id": str(channel.last_message_id) if channel.last_message_id else None,
            "flags": 0, "recipients": [user_json(user) for user in recipients]}


def partial_guild_json(guild: Guild, viewer_id: int, permissions: int, member_count: int | None) -> dict[str, Any]:
    """A guild as GET /users/@me/guilds lists it to ``viewer_id``."""
    body = {"id": str(guild.id), "name": guild.name, "icon": None, "banner": None,
            "owner": guild.owner_id == viewer_id, "permissions": str(permissions), "features": []}
    if member_count is not None:
        body["approximate_member_count"] = member_count
        body["approximate_presence_count"] = 0
    return body


def member_json(view) -> dict[str, Any]:
    member = view.member
    return {
        "user": user_json(member.user), "nick": member.nick, "avatar": None, "banner": None,
        "roles": [str(r) for r in view.role_ids], "joined_at": timestamp(member.joined_at), "premium_since": None,
        "deaf": bool(member.deaf), "mute": bool(member.mute), "flags": 0, "pending": False,
        "communication_disabled_until": timestamp(member.communication_disabled_until),
    }


def webhook_json(webhook, creator: User | None, *, token: str | None = None,
                 api_base: str | None = None) -> dict[str, Any]:
    """An incoming webhook object. ``user`` (its creator) only when given: the token routes show none. ``token``
    and ``url`` (under ``api_base``, the API's root URL) only when the token is known, i.e. at creation."""
    body: dict[str, Any] = {
        "id": str(webhook.id), "type": webhook.type, "guild_id": str(webhook.guild_id),
        "channel_id": str(webhook.channel_id), "name": webhook.name, "avatar": None, "application_id": None,
    }
    if creator is not None:
        body["user"] = user_json(creator)
    if token is not None:
        body["token"] = token
        if api_base is not None:
            body["url"] = f"{api_base}/webhooks/{webhook.id}/{token}"
    return body


def thread_json(channel: Channel, thread, archived_at: datetime | None) -> dict[str, Any]:
    """A thread channel (type 10, 11 or 12) as Discord serves it, with its ``thread_metadata``. ``archived_at``:
    when it was archived, None while it is active (app.services.threads decides, inactivity included)."""
    metadata: dict[str, Any] = {
        "archived": archived_at is not None, "auto_archive_duration": thread.auto_archive_duration,
        "archive_timestamp": timestamp(archived_at if archived_at is not None else thread.archive_timestamp),
        "locked": thread.locked, "create_timestamp": timestamp(thread.created_at),
    }
    if channel.type == 12:
        metadata["invitable"] = thread.invitable
    return {
        "id": str(channel.id), "type": channel.type, "guild_id": str(channel.guild_id),
        "parent_id": str(channel.parent_id), "owner_id": str(thread.owner_id), "name": channel.name,
        "last_message_id": str(channel.last_message_id) if channel.last_message_id else None,
        "rate_limit_per_user": channel.rate_limit_per_user, "flags": thread.flags,
        "message_count": thread.message_count, "member_count": thread.member_count,
        "total_message_sent": thread.total_message_sent, "applied_tags": orjson.loads(thread.applied_tags),
        "thread_metadata": metadata,
    }


def thread_member_json(row, member: dict[str, Any] | None = None) -> dict[str, Any]:
    """A thread member object; ``member``: the guild member object, when asked for (``with_member``)."""
    body: dict[str, Any] = {"id": str(row.thread_id), "user_id": str(row.user_id),
                            "join_timestamp": timestamp(row.join_timestamp), "flags": row.flags}
    if member is not None:
        body["member"] = member
    return body
