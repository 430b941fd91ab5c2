"""Domain objects to Discord's wire objects (users, guilds, roles, members, channels). IDs and permissions are
strings.

Message objects are built in app.services.wire, which `flask messages export` shares.
"""
from __future__ import annotations

import weakref
from typing import Any

from app.domain import TOPIC_CHANNEL_TYPES, VOICE_CHANNEL_TYPES, UserSnapshot
from app.services.wire import message_json, timestamp, user_json
from models import Channel, Guild, Role


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


def member_json(view) -> dict[str, Any]:
    member = view.member
    return {
        "user": user_json(member.user), "nick": member.nick, "avatar": None, "banner": None,
        "roles": [str(r) for r in view.role_ids], "joined_at": timestamp(member.joined_at), "premium_since": None,
        "deaf": False, "mute": False, "flags": 0, "pending": False,
        "communication_disabled_until": timestamp(member.communication_disabled_until),
    }


def application_json(user: UserSnapshot) -> dict[str, Any]:
    """The bot's application: this service has one application per bot user, sharing its id."""
    return {
        "id": str(user.id), "name": user.username, "description": "", "icon": None, "bot_public": False,
        "bot_require_code_grant": False, "owner": user_json(user), "verify_key": "0" * 64, "flags": 0,
        "team": None, "bot": user_json(user), "summary": "",
    }


#: Wire forms of the bundles alive: a page kept in the read cache is answered many times but built once.
_WIRE_FORMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def messages_json(bundle) -> list[dict[str, Any]]:
    wire = _WIRE_FORMS.get(bundle)
    if wire is None:
        wire = _WIRE_FORMS[bundle] = [message_json(m, bundle) for m in bundle.messages]
    return wire
