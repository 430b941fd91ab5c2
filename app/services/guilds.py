"""Guilds, their roles and their members: the rules (who may do what) and the writes."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from app.auth.permissions import OverwriteType, Permission
from app.auth.tokens import check_access_token
from app.domain import ChannelType, UserSnapshot
from app.errors import (
    InvalidForm,
    MissingPermissions,
    UnknownMember,
    UnknownRole,
    UnknownUser,
)
from app.services.access import AccessService, GuildAccess
from app.services.dispatch import SessionEvents
from app.services.rows import add_unless_present
from app.services.wire import channel_json, guild_json, member_json, role_json, timestamp, user_json
from models import Channel, Guild, Member, MemberRole, PermissionOverwrite, Role, Thread, ThreadMember, User


@dataclass(frozen=True)
class MemberView:
    member: Member
    role_ids: list[int]


class GuildService:
    def __init__(self, session: Session, ids, *, events: SessionEvents):
        self.session = session
        self.ids = ids
        self.events = events
        self.access = AccessService(session)

    def _announce(self, type_: str, guild_id: int, data: Callable[[], dict[str, Any]]) -> None:
        self.events.record(self.session, lambda dispatch: [dispatch.guild(type_, data(), guild_id=guild_id)])

    def _announce_member(self, type_: str, guild_id: int, user_id: int) -> None:
        def member() -> dict[str, Any]:
            return member_json(self._member_view(self.session.get(Member, (guild_id, user_id))))
        self._announce(type_, guild_id, member)

    # -- guilds ---------------------------------------------------------------------------------------------

    def create_guild(self, owner: User, name: str) -> Guild:
        """A new guild owned by ``owner``, with its @everyone role and a #general text channel."""
        guild = Guild(id=self.ids.next_id(), name=name, owner_id=owner.id)
        self.session.add(guild)
        self.session.flush()
        self.session.add(Role(id=guild.id, guild_id=guild.id, name="@everyone",
                              permissions=int(Permission.DEFAULT_EVERYONE), position=0))
        self.session.add(Member(guild_id=guild.id, user_id=owner.id, joined_at=datetime.now(timezone.utc)))
        self.session.add(Channel(id=self.ids.next_id(), guild_id=guild.id, type=ChannelType.GUILD_TEXT, name="general",
                                 position=0))
        self._announce("GUILD_CREATE", guild.id, lambda: self._guild_create_data(guild))
        self.session.commit()
        return guild

    def _guild_create_data(self, guild: Guild) -> dict[str, Any]:
        """GUILD_CREATE's ``d``: the guild with its roles, channels and members, as the gateway sends it."""
        channels = self.session.scalars(select(Channel).where(Channel.guild_id == guild.id)
                                        .order_by(Channel.position, Channel.id))
        members = self.session.scalars(select(Member).where(Member.guild_id == guild.id))
        return {**guild_json(guild, self.roles(guild.id)), "channels": [channel_json(c) for c in channels],
                "members": [member_json(self._member_view(m)) for m in members],
                "member_count": self.member_count(guild.id), "threads": [], "unavailable": False, "large": False,
                "joined_at": timestamp(datetime.now(timezone.utc))}

    def get_guild(self, user: UserSnapshot, guild_id: int) -> tuple[Guild, list[Role]]:
        access = self.access.guild_access(guild_id, user)
        return access.guild, self.roles(guild_id)

    def member_count(self, guild_id: int) -> int:
        return self.session.scalar(select(func.count()).select_from(Member).where(Member.guild_id == guild_id))

    def roles(self, guild_id: int) -> list[Role]:
        roles = select(Role).where(Role.guild_id == guild_id).order_by(Role.position, Role.id)
        return list(self.session.scalars(roles))

    # -- roles ----------------------------------------------------------------------------------------------

    def _require_role_manager(self, guild_id: int, user: UserSnapshot) -> GuildAccess:
        access = self.access.guild_access(guild_id, user)
        access.require(Permission.MANAGE_ROLES)
        return access

    def _check_grantable(self, access: GuildAccess, permissions: int) -> None:
        """Nobody grants a permission they do not hold themselves (owners and administrators hold all)."""
        if permissions & ~access.permissions:
            raise MissingPermissions()

    def create_role(self, user: UserSnapshot, guild_id: int, fields: dict[str, Any]) -> Role:
        access = self._require_role_manager(guild_id, user)
        permissions = fields.get("permissions")
        if permissions is None:
            permissions = self.session.get(Role, guild_id).permissions
        self._check_grantable(access, permissions)
        top = self.session.scalar(select(func.max(Role.position)).where(Role.guild_id == guild_id)) or 0
        role = Role(
            id=self.ids.next_id(), guild_id=guild_id, name=fields.get("name") or "new role",
            permissions=permissions, position=top + 1 if access.is_owner else max(access.top_position, 1),
            color=fields.get("color") or 0, hoist=bool(fields.get("hoist")),
            mentionable=bool(fields.get("mentionable")),
        )
        if not access.is_owner:
            # A new role lands just below the creator's highest role, pushing the ones in between up.
            for other in self.session.scalars(select(Role).where(
                    Role.guild_id == guild_id, Role.position >= role.position, Role.id != guild_id)):
                other.position += 1
        self.session.add(role)
        self._announce("GUILD_ROLE_CREATE", guild_id, lambda: {"role": role_json(role)})
        self.session.commit()
        return role

    def _managed_role(self, access: GuildAccess, role_id: int) -> Role:
        role = self.session.get(Role, role_id)
        if role is None or role.guild_id != access.guild.id:
            raise UnknownRole()
        if role.id != access.guild.id and not access.outranks(role.position):
            raise MissingPermissions()
        return role

    def edit_role(self, user: UserSnapshot, guild_id: int, role_id: int, fields: dict[str, Any]) -> Role:
        access = self._require_role_manager(guild_id, user)
        role = self._managed_role(access, role_id)
        if fields.get("permissions") is not None:
            self._check_grantable(access, fields["permissions"] & ~role.permissions)
            role.permissions = fields["permissions"]
        for name in ("name", "color", "hoist", "mentionable"):
            if fields.get(name) is not None:
                if name == "name" and role.id == guild_id:
                    continue  # @everyone keeps its name, as on Discord
                setattr(role, name, fields[name])
        self._announce("GUILD_ROLE_UPDATE", guild_id, lambda: {"role": role_json(role)})
        self.session.commit()
        return role

    def delete_role(self, user: UserSnapshot, guild_id: int, role_id: int) -> None:
        access = self._require_role_manager(guild_id, user)
        role = self._managed_role(access, role_id)
        if role.id == guild_id:
            raise InvalidForm.field("role_id", "ROLE_EVERYONE", "Cannot delete the @everyone role")
        # Overwrites have no foreign key (their target is a role or a user), so the role's go with it here.
        self.session.execute(delete(PermissionOverwrite).where(
            PermissionOverwrite.target_id == role.id, PermissionOverwrite.type == OverwriteType.ROLE))
        self.session.delete(role)
        self._announce("GUILD_ROLE_DELETE", guild_id, lambda: {"role_id": str(role_id)})
        self.session.commit()

    # -- members --------------------------------------------------------------------------------------------

    def add_member(self, actor: UserSnapshot, guild_id: int, user_id: int, access_token: str, nick: str | None,
                   role_ids: Iterable[int]) -> tuple[MemberView, bool]:
        """Add ``user_id`` to the guild (owner or MANAGE_GUILD) with their consent: ``access_token`` is theirs,
        granted to ``actor`` with the guilds.join scope, as Discord requires. Returns the member and whether it is
        new."""
        access = self.access.guild_access(guild_id, actor)
        if not access.is_owner:
            access.require(Permission.MANAGE_GUILD)
        check_access_token(self.session, access_token, user_id=user_id, client_id=actor.id, scope="guilds.join")
        existing = self.session.get(Member, (guild_id, user_id))
        if existing is not None:
            return self._member_view(existing), False
        if self.session.get(User, user_id) is None:
            raise UnknownUser()
        role_ids = set(role_ids) - {guild_id}
        if role_ids:
            access.require(Permission.MANAGE_ROLES)
            for role_id in role_ids:
                self._managed_role(access, role_id)
        member = Member(guild_id=guild_id, user_id=user_id, nick=nick, joined_at=datetime.now(timezone.utc))
        if not add_unless_present(self.session, member):
            # A concurrent PUT added them first: answer as if they had been a member already.
            return self._member_view(self.session.get(Member, (guild_id, user_id))), False
        self.session.add_all(MemberRole(guild_id=guild_id, user_id=user_id, role_id=r) for r in role_ids)
        self._announce_member("GUILD_MEMBER_ADD", guild_id, user_id)
        self.session.commit()
        return self._member_view(member), True

    def get_member(self, actor: UserSnapshot, guild_id: int, user_id: int) -> MemberView:
        self.access.guild_access(guild_id, actor)
        member = self.session.get(Member, (guild_id, user_id))
        if member is None:
            raise UnknownMember()
        return self._member_view(member)

    def list_members(self, actor: UserSnapshot, guild_id: int, *, limit: int, after: int) -> list[MemberView]:
        """Members in ascending user id order, strictly after ``after``."""
        self.access.guild_access(guild_id, actor)
        members = list(self.session.scalars(
            select(Member).where(Member.guild_id == guild_id, Member.user_id > after)
            .order_by(Member.user_id).limit(limit)))
        roles_by_user: dict[int, list[int]] = {m.user_id: [] for m in members}
        if members:
            for user_id, role_id in self.session.execute(select(MemberRole.user_id, MemberRole.role_id).where(
                    MemberRole.guild_id == guild_id, MemberRole.user_id.in_(roles_by_user))):
                roles_by_user[user_id].append(role_id)
        return [MemberView(m, sorted(roles_by_user[m.user_id])) for m in members]

    def remove_member(self, actor: UserSnapshot, guild_id: int, user_id: int) -> None:
        access = self.access.guild_access(guild_id, actor)
        if user_id != actor.id:
            access.require(Permission.KICK_MEMBERS)
        if user_id == access.guild.owner_id:
            raise MissingPermissions()
        member = self.session.get(Member, (guild_id, user_id))
        if member is None:
            raise UnknownMember()
        if user_id != actor.id and not access.is_owner:
            target = self.access.guild_access(guild_id, member.user)
            if not access.outranks(target.top_position):
                raise MissingPermissions()
        removed = user_json(member.user)
        self._leave_threads(guild_id, user_id)
        self.session.delete(member)
        self._announce("GUILD_MEMBER_REMOVE", guild_id, lambda: {"user": removed})
        self.session.commit()

    def _leave_threads(self, guild_id: int, user_id: int) -> None:
        """A member who leaves the guild leaves its threads too, as on Discord (a private thread does not let them
        back in should they rejoin)."""
        thread_ids = list(self.session.scalars(
            select(ThreadMember.thread_id).join(Thread, Thread.channel_id == ThreadMember.thread_id)
            .where(Thread.guild_id == guild_id, ThreadMember.user_id == user_id)))
        if thread_ids:
            self.session.execute(delete(ThreadMember).where(ThreadMember.user_id == user_id,
                                                            ThreadMember.thread_id.in_(thread_ids)))
            self.session.execute(update(Thread).where(Thread.channel_id.in_(thread_ids))
                                 .values(member_count=Thread.member_count - 1))

    def set_member_role(self, actor: UserSnapshot, guild_id: int, user_id: int, role_id: int, present: bool) -> None:
        access = self._require_role_manager(guild_id, actor)
        if self.session.get(Member, (guild_id, user_id)) is None:
            raise UnknownMember()
        role = self._managed_role(access, role_id)
        if role.id == guild_id:
            raise UnknownRole()
        link = self.session.get(MemberRole, (guild_id, user_id, role_id))
        if present and link is None:
            add_unless_present(self.session, MemberRole(guild_id=guild_id, user_id=user_id, role_id=role_id))
        elif not present and link is not None:
            self.session.delete(link)
        else:
            self.session.commit()
            return  # nothing changes, so there is no event
        self._announce_member("GUILD_MEMBER_UPDATE", guild_id, user_id)
        self.session.commit()

    def _member_view(self, member: Member) -> MemberView:
        role_ids = sorted(self.session.scalars(select(MemberRole.role_id).where(
            MemberRole.guild_id == member.guild_id, MemberRole.user_id == member.user_id)))
        return MemberView(member, role_ids)

