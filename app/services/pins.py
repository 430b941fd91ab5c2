"""Pins: PIN_MESSAGES to pin and unpin, a per-channel limit, newest-pinned-first pages."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from app.auth.permissions import Permission
from app.domain import UserSnapshot
from app.errors import MaxPins, SystemMessageAction
from app.messages.base import Pin
from app.services.audit import AuditAction, record_audit_after_write
from app.services.channel_writes import ChannelWrites
from app.services.dispatch import Dispatch
from app.services.messages import REPLYABLE_TYPES, MessageBundle, MessageLookup


@dataclass
class PinPage:
    pins: list[Pin]
    bundle: MessageBundle
    has_more: bool


class PinService:
    def __init__(self, lookup: MessageLookup, writes: ChannelWrites, dispatch: Dispatch, *, max_pins: int = 250):
        self.lookup = lookup
        self.store = lookup.store
        self.writes = writes
        self.dispatch = dispatch
        self.max_pins = max_pins

    def list_pins(self, user: UserSnapshot, channel_id: int, *, before: datetime | None, limit: int) -> PinPage:
        access = self.lookup.channel_access(user, channel_id)
        if not access.has(Permission.READ_MESSAGE_HISTORY):
            return PinPage(pins=[], bundle=MessageBundle(messages=[]), has_more=False)
        pins = self.store.list_pins(channel_id, before=before, limit=limit + 1)
        has_more = len(pins) > limit
        pins = pins[:limit]
        found = self.store.get_messages(channel_id, [p.message_id for p in pins])
        pins = [p for p in pins if p.message_id in found]
        bundle = self.lookup.bundle([found[p.message_id] for p in pins], access, user)
        return PinPage(pins=pins, bundle=bundle, has_more=has_more)

    def set_pinned(self, user: UserSnapshot, channel_id: int, message_id: int, pinned: bool, *,
                   reason: str | None = None) -> None:
        access = self.lookup.channel_access(user, channel_id)
        access.require(Permission.PIN_MESSAGES)
        message = self.lookup.existing_message(access, message_id)
        if message.type not in REPLYABLE_TYPES:
            raise SystemMessageAction()
        if pinned == message.pinned:
            return
        guild_id = access.channel.guild_id
        if pinned:
            if self.store.count_pins(channel_id) >= self.max_pins:
                raise MaxPins(self.max_pins)
            pinned_at = datetime.now(timezone.utc)
            event = self.dispatch.pins_updated(pinned_at, guild_id=guild_id, channel_id=channel_id)
            self.writes.apply(channel_id, lambda: self.store.pin_message(channel_id, message_id, pinned_at),
                              events=lambda _: [event], check={"pin": [channel_id, message_id], "pinned": True})
        else:
            # The newest pin left once this one is gone, read before the write (not inside its transaction).
            left = [p for p in self.store.list_pins(channel_id, before=None, limit=2) if p.message_id != message_id]
            event = self.dispatch.pins_updated(left[0].pinned_at if left else None, guild_id=guild_id,
                                               channel_id=channel_id)
            self.writes.apply(channel_id, lambda: self.store.unpin_message(channel_id, message_id),
                              events=lambda _: [event], check={"pin": [channel_id, message_id], "pinned": False})
        if guild_id is not None:
            record_audit_after_write(self.lookup.session, self.dispatch, self.writes.records_events,
                                     guild_id=guild_id, user_id=user.id,
                                     action_type=AuditAction.MESSAGE_PIN if pinned else AuditAction.MESSAGE_UNPIN,
                                     target_id=message.author_id,
                                     options={"channel_id": str(channel_id), "message_id": str(message_id)},
                                     reason=reason)
