"""Guild channels and their permission overwrites."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.auth.permissions import OverwriteType, Permission
from app.blobs.base import BlobStore, BlobStoreUnavailable
from app.domain import MAX_POSITION, THREAD_TYPES, ChannelType
from app.errors import ChannelTypeAction, DMChannelAction, InvalidForm, MissingPermissions, UnknownOverwrite
from app.messages.base import MessageStore
from app.services.access import AccessService, ChannelAccess, GuildAccess
from app.services.audit import AuditAction, diff, record_audit
from app.services.dispatch import SessionEvents
from app.services.rows import add_unless_present
from app.services.threads import record_thread_deleted
from app.services.wire import channel_json
from models import Channel, Member, PermissionOverwrite, Role

log = logging.getLogger(__name__)


class ChannelService:
    def __init__(self, session: Session, ids, store: MessageStore | None = None, *, events: SessionEvents,
                 blobs: BlobStore | None = None):
        self.session = session
        self.ids = ids
        self.store = store
        self.blobs = blobs
        self.events = events
        self.access = AccessService(session)

    def _audit(self, access: GuildAccess, action: AuditAction, target_id: int, reason: str | None, *,
               changes: list[dict] = (), options: dict | None = None) -> None:
        record_audit(self.session, self.ids, self.events, guild_id=access.guild.id, user_id=access.member.user_id,
                     action_type=action, target_id=target_id, changes=changes, options=options, reason=reason)

    def _overwrite_options(self, overwrite: PermissionOverwrite) -> dict[str, Any]:
        """Discord's optional info of an overwrite's entry: whose overwrite it is (type "0" role, "1" member)."""
        options = {"id": str(overwrite.target_id), "type": str(overwrite.type)}
        if overwrite.type == OverwriteType.ROLE:
            role = self.session.get(Role, overwrite.target_id)
            options["role_name"] = role.name if role is not None else None
        return options

    def _announce(self, type_: str, channel: Channel) -> None:
        self.events.record(self.session, lambda dispatch: [dispatch.channel(
            type_, channel_json(channel), guild_id=channel.guild_id, channel_id=channel.id)])

    def get_channel(self, user, channel_id: int) -> Channel:
        return self.access.channel_access(channel_id, user).channel

    def guild_channels(self, user, guild_id: int) -> list[Channel]:
        self.access.guild_access(guild_id, user)
        return list(self.session.scalars(
            select(Channel).where(Channel.guild_id == guild_id, Channel.type.not_in(THREAD_TYPES))
            .order_by(Channel.position, Channel.id)))

    def _check_overwrites(self, access: GuildAccess, guild_id: int, overwrites: Sequence[dict]) -> None:
        """Overwrites may only allow or deny what the actor holds; MANAGE_ROLES in them needs an administrator."""
        for index, overwrite in enumerate(overwrites):
            bits = overwrite["allow"] | overwrite["deny"]
            if bits & ~access.permissions:
                raise MissingPermissions()
            if bits & Permission.MANAGE_ROLES and not (access.is_owner or access.has(Permission.ADMINISTRATOR)):
                raise MissingPermissions()
            self._check_target(guild_id, overwrite, ("permission_overwrites", str(index), "id"))

    def _check_target(self, guild_id: int, overwrite: dict, path: tuple[str, ...]) -> None:
        if overwrite["type"] == OverwriteType.ROLE:
            role = self.session.get(Role, overwrite["id"])
            if role is None or role.guild_id != guild_id:
                raise InvalidForm.field(path, "UNKNOWN_ROLE", "Unknown role")
        elif self.session.get(Member, (guild_id, overwrite["id"])) is None:
            raise InvalidForm.field(path, "UNKNOWN_MEMBER", "Unknown member")

    def _check_parent(self, guild_id: int, parent_id: int) -> None:
        parent = self.session.get(Channel, parent_id)
        if parent is None or parent.guild_id != guild_id or parent.type != ChannelType.GUILD_CATEGORY:
            raise InvalidForm.field("parent_id", "CHANNEL_PARENT_INVALID", "Category does not exist")

    def create_channel(self, user, guild_id: int, fields: dict[str, Any], *, reason: str | None = None) -> Channel:
        access = self.access.guild_access(guild_id, user)
        access.require(Permission.MANAGE_CHANNELS)
        overwrites = fields.get("permission_overwrites") or []
        self._check_overwrites(access, guild_id, overwrites)
        if fields.get("parent_id") is not None:
            self._check_parent(guild_id, fields["parent_id"])
        position = fields.get("position")
        if position is None:
            # After the last channel; channels at the highest position sort among themselves by id, so a new
            # one still comes last when the position cannot grow.
            position = min((self.session.scalar(
                select(func.max(Channel.position)).where(Channel.guild_id == guild_id)) or 0) + 1, MAX_POSITION)
        channel = Channel(
            id=self.ids.next_id(), guild_id=guild_id, type=fields.get("type") or ChannelType.GUILD_TEXT,
            name=fields["name"], topic=fields.get("topic"), position=position, parent_id=fields.get("parent_id"),
            nsfw=bool(fields.get("nsfw")), rate_limit_per_user=fields.get("rate_limit_per_user") or 0,
        )
        channel.overwrites = [
            PermissionOverwrite(target_id=o["id"], type=o["type"], allow=o["allow"], deny=o["deny"])
            for o in {o["id"]: o for o in overwrites}.values()
        ]
        self.session.add(channel)
        self._announce("CHANNEL_CREATE", channel)
        self._audit(access, AuditAction.CHANNEL_CREATE, channel.id, reason,
                    changes=diff({}, _audited_fields(channel)))
        self.session.commit()
        return channel

    def _guild_channel_access(self, channel_id: int, user) -> ChannelAccess:
        """Access to a channel that only guild channels support (edits, deletes, overwrites): 50003 for a DM,
        50024 for a thread (app.services.threads edits and deletes those; they have no overwrites)."""
        access = self.access.channel_access(channel_id, user)
        if access.guild is None:
            raise DMChannelAction()
        if access.channel.type in THREAD_TYPES:
            raise ChannelTypeAction()
        return access

    def edit_channel(self, user, channel_id: int, fields: dict[str, Any], *, reason: str | None = None) -> Channel:
        access = self._guild_channel_access(channel_id, user)
        access.require(Permission.MANAGE_CHANNELS)
        channel = access.channel
        before = _audited_fields(channel)
        if "permission_overwrites" in fields and fields["permission_overwrites"] is not None:
            access.require(Permission.MANAGE_ROLES)
            self._check_overwrites(access.guild, channel.guild_id, fields["permission_overwrites"])
            channel.overwrites = [
                PermissionOverwrite(target_id=o["id"], type=o["type"], allow=o["allow"], deny=o["deny"])
                for o in {o["id"]: o for o in fields["permission_overwrites"]}.values()
            ]
        if fields.get("parent_id") is not None:
            self._check_parent(channel.guild_id, fields["parent_id"])
        for name in ("name", "topic", "position", "nsfw", "rate_limit_per_user", "parent_id"):
            if name in fields and (fields[name] is not None or name in ("topic", "parent_id")):
                setattr(channel, name, fields[name])
        self._announce("CHANNEL_UPDATE", channel)
        changes = diff(before, _audited_fields(channel))
        if changes:
            self._audit(access.guild, AuditAction.CHANNEL_UPDATE, channel.id, reason, changes=changes)
        self.session.commit()
        return channel

    def delete_channel(self, user, channel_id: int, *, reason: str | None = None) -> Channel:
        access = self._guild_channel_access(channel_id, user)
        access.require(Permission.MANAGE_CHANNELS)
        channel = access.channel
        # Deleting a category leaves its channels in the guild, outside any category, as Discord does.
        children = list(self.session.scalars(select(Channel).where(Channel.parent_id == channel.id)))
        # Its threads go with it, as on Discord (their clients drop a deleted channel's threads themselves).
        threads = [child for child in children if child.type in THREAD_TYPES]
        for child in children:
            if child.type in THREAD_TYPES:
                record_thread_deleted(self.session, self.events, child)
                self.session.delete(child)
                continue
            child.parent_id = None
            self._announce("CHANNEL_UPDATE", child)
        self._announce("CHANNEL_DELETE", channel)
        self._audit(access.guild, AuditAction.CHANNEL_DELETE, channel.id, reason,
                    changes=diff(_audited_fields(channel), {}))
        self.session.delete(channel)
        self.session.commit()
        for deleted_id in [channel_id, *(thread.id for thread in threads)]:
            if self.store is not None:
                self.store.delete_channel(deleted_id)
            if self.blobs is not None:
                # After the messages that name them; a failure leaves orphan files, never a message without its
                # file.
                try:
                    self.blobs.delete_under(str(deleted_id))
                except BlobStoreUnavailable as exc:
                    log.warning("could not delete the attachments of deleted channel %s: %s", deleted_id, exc)
        return channel

    def _overwrite_manager(self, user, channel_id: int) -> ChannelAccess:
        access = self._guild_channel_access(channel_id, user)
        access.require(Permission.MANAGE_ROLES)
        return access

    def put_overwrite(self, user, channel_id: int, target_id: int, type_: int, allow: int, deny: int, *,
                      reason: str | None = None) -> None:
        access = self._overwrite_manager(user, channel_id)
        overwrite = {"id": target_id, "type": type_, "allow": allow, "deny": deny}
        self._check_overwrites(access.guild, access.channel.guild_id, [overwrite])
        existing = self.session.get(PermissionOverwrite, (channel_id, target_id))
        before = {} if existing is None else _overwrite_fields(existing)
        if existing is None:
            existing = PermissionOverwrite(channel_id=channel_id, target_id=target_id, type=type_, allow=allow,
                                           deny=deny)
            if not add_unless_present(self.session, existing):
                # A concurrent PUT created it since the lookup: replace it, as if the two had come in turn.
                existing = self.session.get(PermissionOverwrite, (channel_id, target_id))
        existing.type, existing.allow, existing.deny = type_, allow, deny
        self.session.expire(access.channel, ["overwrites"])
        self._announce("CHANNEL_UPDATE", access.channel)
        changes = diff(before, _overwrite_fields(existing))
        if changes:
            self._audit(access.guild, AuditAction.CHANNEL_OVERWRITE_UPDATE if before
                        else AuditAction.CHANNEL_OVERWRITE_CREATE, channel_id, reason, changes=changes,
                        options=self._overwrite_options(existing))
        self.session.commit()

    def delete_overwrite(self, user, channel_id: int, target_id: int, *, reason: str | None = None) -> None:
        access = self._overwrite_manager(user, channel_id)
        existing = self.session.get(PermissionOverwrite, (channel_id, target_id))
        if existing is None:
            raise UnknownOverwrite()
        self._audit(access.guild, AuditAction.CHANNEL_OVERWRITE_DELETE, channel_id, reason,
                    changes=diff(_overwrite_fields(existing), {}), options=self._overwrite_options(existing))
        access.channel.overwrites.remove(existing)
        self._announce("CHANNEL_UPDATE", access.channel)
        self.session.commit()


def _audited_fields(channel: Channel) -> dict[str, Any]:
    """A channel's fields as its audit log entries show them (Discord's keys, ids as strings)."""
    return {"name": channel.name, "type": channel.type, "topic": channel.topic, "position": channel.position,
            "nsfw": channel.nsfw, "rate_limit_per_user": channel.rate_limit_per_user,
            "parent_id": str(channel.parent_id) if channel.parent_id else None,
            "permission_overwrites": [{"id": str(o.target_id), "type": o.type, "allow": str(o.allow),
                                       "deny": str(o.deny)} for o in channel.overwrites]}


def _overwrite_fields(overwrite: PermissionOverwrite) -> dict[str, Any]:
    return {"id": str(overwrite.target_id), "type": overwrite.type, "allow": str(overwrite.allow),
            "deny": str(overwrite.deny)}

