"""Reactions: who may react, the 20-emoji limit, and emoji parsing as Discord's URLs carry them."""
from __future__ import annotations

import re
from dataclasses import dataclass

import emoji as emoji_data
from sqlalchemy import select

from app.auth.permissions import Permission
from app.domain import UserSnapshot
from app.errors import MaxReactions, UnknownEmoji
from app.events import EventBus, ReactionAdded, ReactionEmojiCleared, ReactionRemoved, ReactionsCleared
from app.ids import InvalidSnowflake, parse_snowflake
from app.services.channel_writes import ChannelWrites
from app.services.messages import MessageLookup
from models import User

MAX_DISTINCT_REACTIONS = 20
# Custom emoji arrive as name:id, or as :name:id / a:name:id when a client strips "<>" from "<:name:id>".
_CUSTOM_EMOJI = re.compile(r"^(?:a?:)?([A-Za-z0-9_~]{1,32}):([0-9]{1,20})$")


@dataclass(frozen=True)
class Emoji:
    """``key`` is what the store keeps: the unicode emoji itself, or ``name:id``."""

    key: str
    name: str
    id: int | None

    def as_json(self) -> dict:
        if self.id is None:
            return {"id": None, "name": self.name}
        return {"id": str(self.id), "name": self.name, "animated": False}


def parse_emoji(raw: str) -> Emoji:
    custom = _CUSTOM_EMOJI.match(raw)
    if custom:
        try:
            emoji_id = parse_snowflake(custom.group(2))
        except InvalidSnowflake:
            raise UnknownEmoji() from None
        name = custom.group(1)
        return Emoji(key=f"{name}:{emoji_id}", name=name, id=emoji_id)
    if 0 < len(raw) <= 32 and emoji_data.is_emoji(raw):
        return Emoji(key=raw, name=raw, id=None)
    raise UnknownEmoji()


def emoji_from_key(key: str) -> Emoji:
    name, sep, emoji_id = key.rpartition(":")
    if sep and emoji_id.isascii() and emoji_id.isdigit():
        return Emoji(key=key, name=name, id=int(emoji_id))
    return Emoji(key=key, name=key, id=None)


class ReactionService:
    def __init__(self, lookup: MessageLookup, writes: ChannelWrites, events: EventBus):
        self.lookup = lookup
        self.session = lookup.session
        self.store = lookup.store
        self.writes = writes
        self.events = events

    def add_reaction(self, user: UserSnapshot, channel_id: int, message_id: int, raw_emoji: str) -> None:
        emoji = parse_emoji(raw_emoji)
        access = self.lookup.readable_access(user, channel_id)
        self.lookup.existing_message(access, message_id)
        present = self.store.reaction_counts(channel_id, [message_id], user.id).get(message_id, [])
        same_emoji = next((r for r in present if r.emoji == emoji.key), None)
        if same_emoji is None:
            # Adding a new emoji needs ADD_REACTIONS; joining an existing one does not.
            access.require(Permission.ADD_REACTIONS)
            if len(present) >= MAX_DISTINCT_REACTIONS:
                raise MaxReactions()
        elif same_emoji.me:
            return  # already reacted: nothing changes, so there is no event to publish
        self.writes.apply(channel_id, lambda: self.store.add_reaction(channel_id, message_id, emoji.key, user.id))
        self.events.publish(ReactionAdded(channel_id=channel_id, guild_id=access.channel.guild_id,
                                          data={"message_id": message_id, "emoji": emoji.key, "user_id": user.id}))

    def remove_reaction(self, user: UserSnapshot, channel_id: int, message_id: int, raw_emoji: str,
                        target_user_id: int) -> None:
        emoji = parse_emoji(raw_emoji)
        access = self.lookup.channel_access(user, channel_id)
        if target_user_id != user.id:
            access.require(Permission.MANAGE_MESSAGES)
        self.lookup.existing_message(access, message_id)
        reactions = self.store.reaction_counts(channel_id, [message_id], target_user_id).get(message_id, [])
        if not any(r.emoji == emoji.key and r.me for r in reactions):
            return  # the user has no such reaction: nothing changes, so there is no event to publish
        self.writes.apply(channel_id,
                          lambda: self.store.remove_reaction(channel_id, message_id, emoji.key, target_user_id))
        self.events.publish(ReactionRemoved(channel_id=channel_id, guild_id=access.channel.guild_id, data={
            "message_id": message_id, "emoji": emoji.key, "user_id": target_user_id}))

    def reaction_users(self, user: UserSnapshot, channel_id: int, message_id: int, raw_emoji: str, *,
                       after: int | None, limit: int, burst: bool = False) -> list[User]:
        emoji = parse_emoji(raw_emoji)
        access = self.lookup.readable_access(user, channel_id)
        self.lookup.existing_message(access, message_id)
        if burst:
            return []  # no super reactions are stored, so nobody is on the burst list
        user_ids = self.store.reaction_users(channel_id, message_id, emoji.key, after=after, limit=limit)
        if not user_ids:
            return []
        users = {u.id: u for u in self.session.scalars(select(User).where(User.id.in_(user_ids)))}
        self.session.commit()
        return [users[u] for u in user_ids if u in users]

    def clear_reactions(self, user: UserSnapshot, channel_id: int, message_id: int,
                        raw_emoji: str | None = None) -> None:
        emoji = parse_emoji(raw_emoji) if raw_emoji is not None else None
        access = self.lookup.channel_access(user, channel_id)
        access.require(Permission.MANAGE_MESSAGES)
        self.lookup.existing_message(access, message_id)
        if emoji is None:
            self.writes.apply(channel_id, lambda: self.store.clear_reactions(channel_id, message_id))
            event = ReactionsCleared(channel_id=channel_id, guild_id=access.channel.guild_id,
                                     data={"message_id": message_id})
        else:
            self.writes.apply(channel_id, lambda: self.store.remove_emoji(channel_id, message_id, emoji.key))
            event = ReactionEmojiCleared(channel_id=channel_id, guild_id=access.channel.guild_id,
                                         data={"message_id": message_id, "emoji": emoji.key})
        self.events.publish(event)
