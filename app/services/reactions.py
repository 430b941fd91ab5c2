"""Reactions: who may react, the 20-emoji limit, and emoji parsing as Discord's URLs carry them."""
from __future__ import annotations

from sqlalchemy import select

from app.auth.permissions import Permission
from app.domain import UserSnapshot
from app.errors import MaxReactions, UnknownMessage
from app.services.channel_writes import ChannelWrites
from app.services.dispatch import Dispatch
from app.services.emoji import parse_emoji
from app.services.messages import MessageLookup
from models import User

MAX_DISTINCT_REACTIONS = 20


class ReactionService:
    def __init__(self, lookup: MessageLookup, writes: ChannelWrites, dispatch: Dispatch):
        self.lookup = lookup
        self.session = lookup.session
        self.store = lookup.store
        self.writes = writes
        self.dispatch = dispatch

    def add_reaction(self, user: UserSnapshot, channel_id: int, message_id: int, raw_emoji: str) -> None:
        emoji = parse_emoji(raw_emoji)
        access = self.lookup.readable_access(user, channel_id)
        message = self.lookup.existing_message(access, message_id)
        present = self.store.reaction_counts(channel_id, [message_id], user.id).get(message_id, [])
        same_emoji = next((r for r in present if r.emoji == emoji.key), None)
        if same_emoji is None:
            # Adding a new emoji needs ADD_REACTIONS; joining an existing one does not.
            access.require(Permission.ADD_REACTIONS)
            if len(present) >= MAX_DISTINCT_REACTIONS:
                raise MaxReactions()
        elif same_emoji.me:
            return  # already reacted: nothing changes, so there is no event to publish
        event = self.dispatch.reaction_added(message_id, emoji, user.id, message.author_id,
                                             guild_id=access.channel.guild_id, channel_id=channel_id)
        self.writes.apply(channel_id, lambda: self.store.add_reaction(channel_id, message_id, emoji.key, user.id),
                          events=lambda _: [event],
                          check={"reaction": [channel_id, message_id, emoji.key, user.id], "present": True})

    def remove_reaction(self, user: UserSnapshot, channel_id: int, message_id: int, raw_emoji: str,
                        target_user_id: int) -> None:
        emoji = parse_emoji(raw_emoji)
        access = self.lookup.channel_access(user, channel_id)
        if target_user_id != user.id:
            access.require(Permission.MANAGE_MESSAGES)
        self.lookup.existing_message(access, message_id)
        reactions = self.store.reaction_counts(channel_id, [message_id], target_user_id).get(message_id, [])
        if not any(r.emoji == emoji.key and r.me for r in reactions):
            if not access.has(Permission.READ_MESSAGE_HISTORY):
                # Without history a caller knows a message only by their own reaction: answer as for a missing
                # id, so that removing nothing tells them nothing.
                raise UnknownMessage()
            return  # the user has no such reaction: nothing changes, so there is no event to publish
        event = self.dispatch.reaction_removed(message_id, emoji, target_user_id, guild_id=access.channel.guild_id,
                                               channel_id=channel_id)
        self.writes.apply(channel_id,
                          lambda: self.store.remove_reaction(channel_id, message_id, emoji.key, target_user_id),
                          events=lambda _: [event],
                          check={"reaction": [channel_id, message_id, emoji.key, target_user_id], "present": False})

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
        guild_id = access.channel.guild_id
        if emoji is None:
            event = self.dispatch.reactions_cleared(message_id, guild_id=guild_id, channel_id=channel_id)
            self.writes.apply(channel_id, lambda: self.store.clear_reactions(channel_id, message_id),
                              events=lambda _: [event],
                              check={"reactions": [channel_id, message_id, None], "present": False})
        else:
            event = self.dispatch.emoji_cleared(message_id, emoji, guild_id=guild_id, channel_id=channel_id)
            self.writes.apply(channel_id, lambda: self.store.remove_emoji(channel_id, message_id, emoji.key),
                              events=lambda _: [event],
                              check={"reactions": [channel_id, message_id, emoji.key], "present": False})
