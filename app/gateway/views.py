"""What a worker's gateway knows of a guild: its roles, channels with their overwrites, and the members that
have sessions, to decide which sessions may see an event and to build GUILD_CREATE and MESSAGE_CREATE's
``member``.

A view is a snapshot read from the database; events that change what it holds (roles, members, channels and
their overwrites) drop it and the next event reads it again, so permission changes apply to live sessions
without a reconnect. Permissions are computed by app.auth.permissions, the code the REST routes use.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from app.auth.permissions import Overwrite, Permission, base_permissions, channel_permissions
from app.domain import THREAD_TYPES, ChannelType
from app.services.guilds import MemberView
from app.services.threads import archived_at, last_activity
from app.services.wire import channel_json, guild_json, member_json, thread_json
from models import Channel, DirectChannel, Guild, Member, MemberRole, Role, Thread, ThreadMember, User

#: Events after which a guild's view is read again.
INVALIDATING_EVENTS = frozenset({
    "GUILD_ROLE_CREATE", "GUILD_ROLE_UPDATE", "GUILD_ROLE_DELETE", "GUILD_MEMBER_ADD", "GUILD_MEMBER_UPDATE",
    "GUILD_MEMBER_REMOVE", "CHANNEL_CREATE", "CHANNEL_UPDATE", "CHANNEL_DELETE", "GUILD_CREATE", "GUILD_UPDATE",
    "THREAD_CREATE", "THREAD_UPDATE", "THREAD_DELETE", "THREAD_MEMBERS_UPDATE",
})

_VIEW_CHANNEL = int(Permission.VIEW_CHANNEL)
_MANAGE_THREADS = int(Permission.MANAGE_THREADS)


@dataclass
class ChannelEntry:
    json: dict[str, Any]
    overwrites: list[Overwrite]


@dataclass
class ThreadEntry:
    """A thread of the guild: seen by those who see its parent, a private one only by its members and by
    MANAGE_THREADS holders in the parent."""

    json: dict[str, Any]
    parent_id: int
    private: bool
    #: When inactivity archives it (None: archived already); a view may outlive that moment.
    archives_at: datetime | None
    members: frozenset[int] = frozenset()

    def is_active(self, now: datetime) -> bool:
        return self.archives_at is not None and self.archives_at > now


@dataclass
class GuildView:
    guild_id: int
    owner_id: int
    guild: dict[str, Any]
    roles: dict[int, int]
    channels: dict[int, ChannelEntry]
    member_count: int
    threads: dict[int, ThreadEntry] = field(default_factory=dict)
    #: user id -> the member object (None: not a member), loaded for the users that need it.
    members: dict[int, dict[str, Any] | None] = field(default_factory=dict)
    _visible: dict[int, frozenset[int]] = field(default_factory=dict)
    _managed: dict[int, frozenset[int]] = field(default_factory=dict)

    def member_role_ids(self, user_id: int) -> list[int]:
        member = self.members.get(user_id)
        return [int(r) for r in member["roles"]] if member else []

    def visible_channels(self, user_id: int) -> frozenset[int]:
        """The channels the user can VIEW (none when not a member)."""
        cached = self._visible.get(user_id)
        if cached is not None:
            return cached
        member = self.members.get(user_id)
        visible: frozenset[int] = frozenset()
        managed: frozenset[int] = frozenset()
        if member is not None:
            role_ids = self.member_role_ids(user_id)
            base = base_permissions(guild_id=self.guild_id, owner_id=self.owner_id, user_id=user_id,
                                    everyone_permissions=self.roles.get(self.guild_id, 0),
                                    role_permissions=[self.roles.get(r, 0) for r in role_ids])
            permissions = {
                channel_id: channel_permissions(base, guild_id=self.guild_id, user_id=user_id,
                                                member_role_ids=role_ids, overwrites=entry.overwrites)
                for channel_id, entry in self.channels.items()}
            visible = frozenset(c for c, bits in permissions.items() if bits & _VIEW_CHANNEL)
            managed = frozenset(c for c, bits in permissions.items() if bits & _MANAGE_THREADS)
        self._visible[user_id] = visible
        self._managed[user_id] = managed
        return visible

    def has_permission(self, user_id: int, permission: int) -> bool:
        """Whether the member holds ``permission`` guild-wide (owner and ADMINISTRATOR hold all), as the REST
        routes decide it: a timed-out member keeps only VIEW_CHANNEL and READ_MESSAGE_HISTORY until the end."""
        member = self.members.get(user_id)
        if member is None:
            return False
        base = base_permissions(guild_id=self.guild_id, owner_id=self.owner_id, user_id=user_id,
                                everyone_permissions=self.roles.get(self.guild_id, 0),
                                role_permissions=[self.roles.get(r, 0) for r in self.member_role_ids(user_id)])
        timeout = member.get("communication_disabled_until")
        if timeout is not None and user_id != self.owner_id and not base & Permission.ADMINISTRATOR \
                and datetime.fromisoformat(timeout) > datetime.now(timezone.utc):
            base &= Permission.VIEW_CHANNEL | Permission.READ_MESSAGE_HISTORY
        return base & permission == permission

    def can_view(self, user_id: int, channel_id: int) -> bool:
        thread = self.threads.get(channel_id)
        if thread is not None:
            return self.can_view_thread(user_id, thread)
        return channel_id in self.visible_channels(user_id)

    def manages_threads(self, user_id: int, channel_id: int) -> bool:
        """Whether the user sees the channel and holds MANAGE_THREADS in it (sees its private threads)."""
        return channel_id in self.visible_channels(user_id) and channel_id in self._managed[user_id]

    def can_view_thread(self, user_id: int, thread: ThreadEntry) -> bool:
        if thread.parent_id not in self.visible_channels(user_id):
            return False
        return not thread.private or user_id in thread.members or thread.parent_id in self._managed[user_id]

    def guild_create(self, user_id: int) -> dict[str, Any]:
        """GUILD_CREATE's ``d`` for a session of ``user_id``: the channels it can see and its own member."""
        member = self.members.get(user_id)
        visible = self.visible_channels(user_id)
        now = datetime.now(timezone.utc)
        return {**self.guild, "channels": [e.json for c, e in self.channels.items() if c in visible],
                "members": [member] if member else [], "member_count": self.member_count,
                "joined_at": member["joined_at"] if member else None, "large": False, "unavailable": False,
                "threads": [t.json for t in self.threads.values()
                            if t.is_active(now) and self.can_view_thread(user_id, t)],
                "presences": [], "voice_states": [], "stage_instances": [],
                "guild_scheduled_events": [], "soundboard_sounds": [], "lazy": True}


def load_view(session: Session, guild_id: int, user_ids: Iterable[int]) -> GuildView | None:
    """Read a guild's view, with the members among ``user_ids``; None when the guild does not exist."""
    guild = session.get(Guild, guild_id)
    if guild is None:
        return None
    roles = list(session.scalars(select(Role).where(Role.guild_id == guild_id).order_by(Role.position, Role.id)))
    channels = session.scalars(select(Channel).where(Channel.guild_id == guild_id,
                                                     Channel.type.not_in(THREAD_TYPES))
                               .options(selectinload(Channel.overwrites)).order_by(Channel.position, Channel.id))
    count = session.scalar(select(func.count()).select_from(Member).where(Member.guild_id == guild_id))
    view = GuildView(
        guild_id=guild_id, owner_id=guild.owner_id, guild=guild_json(guild, roles),
        roles={r.id: r.permissions for r in roles},
        channels={c.id: ChannelEntry(channel_json(c), [Overwrite(o.target_id, o.type, o.allow, o.deny)
                                                        for o in c.overwrites]) for c in channels},
        member_count=count or 0, threads=load_threads(session, guild_id))
    load_members(session, view, user_ids)
    return view


def load_threads(session: Session, guild_id: int) -> dict[int, ThreadEntry]:
    """The guild's threads, with the members of its private ones."""
    now = datetime.now(timezone.utc)
    rows = session.execute(select(Channel, Thread).join(Thread, Thread.channel_id == Channel.id)
                           .where(Thread.guild_id == guild_id).order_by(Channel.id)).all()
    private = [c.id for c, _ in rows if c.type == ChannelType.PRIVATE_THREAD]
    members: dict[int, set[int]] = {}
    if private:
        for thread_id, user_id in session.execute(select(ThreadMember.thread_id, ThreadMember.user_id)
                                                  .where(ThreadMember.thread_id.in_(private))):
            members.setdefault(thread_id, set()).add(user_id)
    threads = {}
    for channel, thread in rows:
        when = archived_at(channel, thread, now)
        threads[channel.id] = ThreadEntry(
            json={**thread_json(channel, thread, when), "guild_id": str(guild_id)}, parent_id=channel.parent_id,
            private=channel.type == ChannelType.PRIVATE_THREAD,
            archives_at=None if when is not None else last_activity(channel, thread) + timedelta(
                minutes=thread.auto_archive_duration),
            members=frozenset(members.get(channel.id, ())))
    return threads


def load_members(session: Session, view: GuildView, user_ids: Iterable[int]) -> None:
    """Add the member objects of ``user_ids`` (None for those who are not members) to the view."""
    wanted = [u for u in set(user_ids) if u not in view.members]
    if not wanted:
        return
    rows = session.execute(select(Member, User).join(User, User.id == Member.user_id)
                           .where(Member.guild_id == view.guild_id, Member.user_id.in_(wanted))).all()
    role_rows = session.execute(select(MemberRole.user_id, MemberRole.role_id)
                                .where(MemberRole.guild_id == view.guild_id, MemberRole.user_id.in_(wanted)))
    role_ids: dict[int, list[int]] = {}
    for user_id, role_id in role_rows:
        role_ids.setdefault(user_id, []).append(role_id)
    for user_id in wanted:
        view.members[user_id] = None
    for member, _user in rows:
        view.members[member.user_id] = member_json(MemberView(member, sorted(role_ids.get(member.user_id, []))))


def dm_recipients(session: Session, channel_id: int) -> frozenset[int] | None:
    """The two users of a DM channel, or None when the channel is not a DM."""
    pair = session.get(DirectChannel, channel_id)
    return None if pair is None else frozenset((pair.user_low_id, pair.user_high_id))


def guilds_of(session: Session, user_id: int) -> list[int]:
    """The ids of the guilds the user is a member of."""
    return list(session.scalars(select(Member.guild_id).where(Member.user_id == user_id).order_by(Member.guild_id)))


def search_members(session: Session, guild_id: int, *, query: str | None, user_ids: list[int] | None,
                   limit: int) -> list[dict[str, Any]]:
    """REQUEST_GUILD_MEMBERS: members whose username starts with ``query`` (all for ""), or those of ``user_ids``."""
    statement = select(Member, User).join(User, User.id == Member.user_id).where(Member.guild_id == guild_id)
    if user_ids is not None:
        statement = statement.where(Member.user_id.in_(user_ids))
    elif query:
        escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        statement = statement.where(User.username.ilike(escaped + "%", escape="\\"))
    if limit:
        statement = statement.limit(limit)
    rows = session.execute(statement.order_by(Member.user_id)).all()
    wanted = [member.user_id for member, _ in rows]
    role_ids: dict[int, list[int]] = {}
    if wanted:
        for user_id, role_id in session.execute(select(MemberRole.user_id, MemberRole.role_id).where(
                MemberRole.guild_id == guild_id, MemberRole.user_id.in_(wanted))):
            role_ids.setdefault(user_id, []).append(role_id)
    return [member_json(MemberView(member, sorted(role_ids.get(member.user_id, [])))) for member, _ in rows]

