"""Who may do what: loads a member's roles and a channel's overwrites and applies Discord's algorithm."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from app.auth.permissions import (
    Overwrite,
    Permission,
    base_permissions,
    channel_permissions,
    thread_permissions,
)
from app.domain import THREAD_TYPES, ChannelRef, ChannelType, ReadableChannels, UserSnapshot
from app.errors import MissingAccess, MissingPermissions, UnknownChannel, UnknownGuild
from models import Channel, DirectChannel, Guild, Member, MemberRole, Role, ThreadMember, User

#: What both users of a DM may do there, as on Discord: no roles or overwrites apply; nobody manages the other's
#: messages, but either may pin.
DM_PERMISSIONS = (Permission.VIEW_CHANNEL | Permission.SEND_MESSAGES | Permission.READ_MESSAGE_HISTORY
                  | Permission.ADD_REACTIONS | Permission.ATTACH_FILES | Permission.EMBED_LINKS
                  | Permission.USE_EXTERNAL_EMOJIS | Permission.SEND_TTS_MESSAGES | Permission.PIN_MESSAGES)


@dataclass(frozen=True)
class GuildAccess:
    guild: Guild
    member: Member
    role_ids: frozenset[int]
    permissions: int
    #: The member's highest role position (the owner outranks every role).
    top_position: int

    @property
    def is_owner(self) -> bool:
        return self.guild.owner_id == self.member.user_id

    def has(self, permission: Permission) -> bool:
        return self.permissions & permission == permission

    def require(self, permission: Permission) -> None:
        if not self.has(permission):
            raise MissingPermissions()

    def outranks(self, position: int) -> bool:
        return self.is_owner or self.top_position > position


@dataclass(frozen=True)
class ChannelAccess:
    """A user's permissions in a channel. The message services get a ``ChannelRef`` and no guild standing."""

    channel: Channel | ChannelRef
    guild: GuildAccess | None
    permissions: int

    def has(self, permission: Permission) -> bool:
        return self.permissions & permission == permission

    def require(self, permission: Permission) -> None:
        if not self.has(permission):
            raise MissingPermissions()


def _is_timed_out(member: Member) -> bool:
    until = member.communication_disabled_until
    return until is not None and until > datetime.now(timezone.utc)


class AccessService:
    """Resolves permissions. Reads only; never commits."""

    def __init__(self, session: Session):
        self.session = session

    def guild_access(self, guild_id: int, user: User | UserSnapshot) -> GuildAccess:
        """The user's standing in a guild: UnknownGuild if there is none, MissingAccess if not a member."""
        guild = self.session.get(Guild, guild_id)
        if guild is None:
            raise UnknownGuild()
        member = self.session.get(Member, (guild_id, user.id))
        if member is None:
            raise MissingAccess()
        return self._guild_access(guild, member)

    def _guild_access(self, guild: Guild, member: Member) -> GuildAccess:
        # Every role of the guild, each with whether the member has it: one query for both.
        rows = self.session.execute(
            select(Role.id, Role.permissions, Role.position, MemberRole.role_id.is_not(None))
            .outerjoin(MemberRole, (MemberRole.role_id == Role.id) & (MemberRole.guild_id == guild.id)
                       & (MemberRole.user_id == member.user_id))
            .where(Role.guild_id == guild.id))
        roles = {role_id: (permissions, position, held) for role_id, permissions, position, held in rows}
        role_ids = frozenset(role_id for role_id, (_, _, held) in roles.items() if held)
        permissions = base_permissions(
            guild_id=guild.id, owner_id=guild.owner_id, user_id=member.user_id,
            everyone_permissions=roles.get(guild.id, (0, 0, False))[0],
            role_permissions=[roles[r][0] for r in role_ids],
        )
        if _is_timed_out(member) and guild.owner_id != member.user_id and not permissions & Permission.ADMINISTRATOR:
            permissions &= Permission.VIEW_CHANNEL | Permission.READ_MESSAGE_HISTORY
        top = max((roles[r][1] for r in role_ids), default=0)
        return GuildAccess(guild=guild, member=member, role_ids=role_ids, permissions=permissions, top_position=top)

    def channel_access(self, channel_id: int, user: User | UserSnapshot, *, require_view: bool = True) -> ChannelAccess:
        """The user's permissions in a channel.

        UnknownChannel when it does not exist; MissingAccess when the user is not in its guild or (with
        ``require_view``) cannot see it, so nothing about an invisible channel's contents leaks.
        """
        found = self.session.execute(
            select(Channel, Guild, Member)
            .outerjoin(Guild, Guild.id == Channel.guild_id)
            .outerjoin(Member, (Member.guild_id == Channel.guild_id) & (Member.user_id == user.id))
            .where(Channel.id == channel_id)).first()
        if found is None:
            raise UnknownChannel()
        channel, guild, member = found
        if channel.type == ChannelType.DM:
            return self._dm_access(channel, user)
        if channel.guild_id is None or guild is None or member is None:
            raise MissingAccess()
        guild_access = self._guild_access(guild, member)
        if channel.type in THREAD_TYPES:
            permissions = self._thread_permissions(guild_access, channel, user.id)
        else:
            permissions = self._permissions_in(guild_access, channel, user.id)
        if _is_timed_out(member) and not guild_access.is_owner and not (
                guild_access.permissions & Permission.ADMINISTRATOR):
            permissions &= Permission.VIEW_CHANNEL | Permission.READ_MESSAGE_HISTORY
        if require_view and not permissions & Permission.VIEW_CHANNEL:
            raise MissingAccess()
        return ChannelAccess(channel=channel, guild=guild_access, permissions=permissions)

    @staticmethod
    def _permissions_in(guild_access: GuildAccess, channel: Channel, user_id: int) -> int:
        return channel_permissions(
            guild_access.permissions, guild_id=guild_access.guild.id, user_id=user_id,
            member_role_ids=guild_access.role_ids,
            overwrites=[Overwrite(o.target_id, o.type, o.allow, o.deny) for o in channel.overwrites])

    def _thread_permissions(self, guild_access: GuildAccess, thread: Channel, user_id: int) -> int:
        """A thread's permissions come from its parent's overwrites (app.auth.permissions.thread_permissions)."""
        parent = self.session.get(Channel, thread.parent_id) if thread.parent_id is not None else None
        if parent is None:
            return 0
        private = thread.type == ChannelType.PRIVATE_THREAD
        is_member = private and self.session.get(ThreadMember, (thread.id, user_id)) is not None
        return thread_permissions(self._permissions_in(guild_access, parent, user_id), private=private,
                                  is_member=is_member)

    def _dm_access(self, channel: Channel, user: User | UserSnapshot) -> ChannelAccess:
        """A DM's two users have DM_PERMISSIONS; to anyone else it does not exist, not even as a 403."""
        pair = self.session.get(DirectChannel, channel.id)
        if pair is None or user.id not in (pair.user_low_id, pair.user_high_id):
            raise UnknownChannel()
        return ChannelAccess(channel=channel, guild=None, permissions=DM_PERMISSIONS)

    def readable_channels(self, guild_id: int, user: User | UserSnapshot) -> ReadableChannels:
        """Every channel of the guild, and those where the user has VIEW_CHANNEL and READ_MESSAGE_HISTORY (what
        reading a channel's history needs): the same algorithm as :meth:`channel_access`, in two queries for the
        whole guild. UnknownGuild or MissingAccess as :meth:`guild_access`."""
        guild_access = self.guild_access(guild_id, user)
        channels = self.session.scalars(select(Channel).where(Channel.guild_id == guild_id)
                                        .options(selectinload(Channel.overwrites))).all()
        needed = Permission.VIEW_CHANNEL | Permission.READ_MESSAGE_HISTORY
        joined = frozenset(self.session.scalars(
            select(ThreadMember.thread_id).join(Channel, Channel.id == ThreadMember.thread_id)
            .where(Channel.guild_id == guild_id, Channel.type == ChannelType.PRIVATE_THREAD,
                   ThreadMember.user_id == user.id)))
        own = {channel.id: self._permissions_in(guild_access, channel, user.id)
               for channel in channels if channel.type not in THREAD_TYPES}
        permissions = dict(own)
        for channel in channels:
            if channel.type in THREAD_TYPES:
                # As in channel_access: a thread has its parent's permissions, a private one only for its members.
                permissions[channel.id] = thread_permissions(
                    own.get(channel.parent_id, 0), private=channel.type == ChannelType.PRIVATE_THREAD,
                    is_member=channel.id in joined)
        readable = frozenset(channel_id for channel_id, bits in permissions.items() if bits & needed == needed)
        # A timeout's end changes the permissions without a write.
        until = guild_access.member.communication_disabled_until if _is_timed_out(guild_access.member) else None
        return ReadableChannels(channels={channel.id: ChannelRef.of(channel) for channel in channels},
                                readable=readable, until=until)
