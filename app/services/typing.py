"""The typing indicator: ``POST /channels/{id}/typing`` answers 204 to whoever may send in the channel and
records a TYPING_START event for the gateway, in Discord's shape (unix seconds, and the member in a guild)."""
from __future__ import annotations

import time

from sqlalchemy.orm import Session

from app.auth.permissions import Permission
from app.domain import THREAD_TYPES, ChannelType, UserSnapshot
from app.errors import NonTextChannel
from app.services.access import AccessService
from app.services.dispatch import SessionEvents
from app.services.wire import member_json

TYPING_CHANNEL_TYPES = frozenset({ChannelType.GUILD_TEXT, ChannelType.GUILD_ANNOUNCEMENT, ChannelType.DM,
                                  *THREAD_TYPES})


class TypingService:
    def __init__(self, session: Session, *, events: SessionEvents):
        self.session = session
        self.events = events

    def start_typing(self, user: UserSnapshot, channel_id: int) -> None:
        access = AccessService(self.session).channel_access(channel_id, user)
        if access.channel.type not in TYPING_CHANNEL_TYPES:
            raise NonTextChannel()
        access.require(Permission.SEND_MESSAGES)
        data = {"channel_id": str(channel_id), "user_id": str(user.id), "timestamp": int(time.time())}
        if access.guild is not None:
            data["member"] = member_json(access.guild)
        guild_id = access.channel.guild_id
        self.events.record(self.session, lambda dispatch: [dispatch.typing_started(
            data, guild_id=guild_id, channel_id=channel_id)])
        self.session.commit()
