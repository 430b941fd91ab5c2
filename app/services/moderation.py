"""Moderation: editing members (nick, roles, timeout, mute/deaf), bans with their message purge, member search.

Discord's role hierarchy applies to every action on another member: nobody acts on the owner, and only the owner
acts on a member whose highest role is at or above the actor's own.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.auth.permissions import Permission
from app.domain import UserSnapshot
from app.errors import BulkBanFailed, InvalidForm, MissingPermissions, UnknownBan, UnknownMember, UnknownUser
from app.ids import snowflake_from_ms
from app.messages.base import MessageStore
from app.services.access import AccessService, GuildAccess
from app.services.attachments import AttachmentService, attachment_records
from app.services.audit import AuditAction, change, record_audit
from app.services.channel_writes import ChannelWrites
from app.services.dispatch import Dispatch, SessionEvents
from app.services.guilds import GuildService, MemberView
from app.services.rows import add_unless_present
from app.services.threads import forget_thread_messages, leave_guild_threads
from app.services.wire import timestamp, user_json
from models import Ban, Member, MemberRole, Role, User

#: Discord's longest timeout, and the window a ban may purge.
MAX_TIMEOUT = timedelta(days=28)
MAX_DELETE_MESSAGE_SECONDS = 7 * 24 * 3600
#: How many references the purge reads from the author index at a time, and deletes per channel at a time.
PURGE_PAGE = 1000
PURGE_BATCH = 100


class MessagePurge:
    """Deletes one author's messages of a time window in every channel of a guild, through the author index
    (:meth:`MessageStore.messages_by_author`), never a scan of the guild's history. Each channel's messages go
    through :class:`ChannelWrites` as a bulk delete does: the channel's bookkeeping, MESSAGE_DELETE(_BULK) events
    (which the search indexer and the read caches follow), reactions and pins with the messages, files after."""

    def __init__(self, session: Session, store: MessageStore, writes: ChannelWrites, dispatch: Dispatch,
                 attachments: AttachmentService):
        self.session = session
        self.store = store
        self.writes = writes
        self.dispatch = dispatch
        self.attachments = attachments

    def purge(self, guild_id: int, author_id: int, since: datetime) -> int:
        """Delete the author's messages sent at or after ``since``; returns how many were deleted."""
        after = snowflake_from_ms(int(since.timestamp() * 1000)) - 1
        by_channel: dict[int, list[int]] = defaultdict(list)
        before = None
        while True:
            page = self.store.messages_by_author(guild_id, author_id, after=after, before=before, limit=PURGE_PAGE)
            for ref in page:
                by_channel[ref.channel_id].append(ref.message_id)
            if len(page) < PURGE_PAGE:
                break
            before = page[-1].message_id
        deleted = 0
        for channel_id, message_ids in sorted(by_channel.items()):
            for start in range(0, len(message_ids), PURGE_BATCH):
                deleted += self._delete(guild_id, channel_id, message_ids[start:start + PURGE_BATCH])
        return deleted

    def _delete(self, guild_id: int, channel_id: int, message_ids: Sequence[int]) -> int:
        found = self.store.get_messages(channel_id, message_ids)
        existing = sorted(found)
        if not existing:
            return 0
        if len(existing) == 1:
            event = self.dispatch.message_deleted(existing[0], guild_id=guild_id, channel_id=channel_id)
        else:
            event = self.dispatch.messages_deleted(existing, guild_id=guild_id, channel_id=channel_id)
        self.writes.apply(channel_id, lambda: self.store.delete_messages(channel_id, existing), deleted=set(existing),
                          events=lambda _: [event], check={"messages": [channel_id, existing], "exists": False})
        forget_thread_messages(self.session, channel_id, existing)
        self.session.commit()
        self.attachments.delete(channel_id, [record for message in found.values()
                                             for record in attachment_records(message)])
        return len(existing)


class ModerationService:
    def __init__(self, session: Session, ids, *, events: SessionEvents, purge: MessagePurge | None = None):
        self.session = session
        self.ids = ids
        self.events = events
        self.purge = purge
        self.access = AccessService(session)
        self.guilds = GuildService(session, ids, events=events)

    def _audit(self, access: GuildAccess, action: AuditAction, target_id: int | None, *, reason: str | None,
               changes: Iterable[dict] = (), options: dict | None = None) -> None:
        record_audit(self.session, self.ids, self.events, guild_id=access.guild.id, user_id=access.member.user_id,
                     action_type=action, target_id=target_id, changes=list(changes), options=options, reason=reason)

    def _announce(self, type_: str, guild_id: int, data: dict[str, Any]) -> None:
        self.events.record(self.session, lambda dispatch: [dispatch.guild(type_, data, guild_id=guild_id)])

    # -- the hierarchy ----------------------------------------------------------------------------------------

    def require_outranks(self, access: GuildAccess, user_id: int) -> GuildAccess | None:
        """MissingPermissions unless ``access``'s member may act on ``user_id`` (GuildService.require_reach), and
        never on the owner, not even the owner on themselves. Returns the target's standing (None when they are
        not a member)."""
        if user_id == access.guild.owner_id:
            raise MissingPermissions()
        member = self.session.get(Member, (access.guild.id, user_id))
        return None if member is None else self.guilds.require_reach(access, member)

    # -- editing members --------------------------------------------------------------------------------------

    def edit_member(self, actor: UserSnapshot, guild_id: int, user_id: int, fields: dict[str, Any], *,
                    reason: str | None = None) -> MemberView:
        """PATCH /guilds/{id}/members/{user_id} (and @me with only ``nick``). ``fields`` holds the keys given:
        ``nick``, ``roles`` (the full list), ``communication_disabled_until`` (None clears), ``mute``, ``deaf``."""
        access = self.access.guild_access(guild_id, actor)
        member = self.session.get(Member, (guild_id, user_id))
        if member is None:
            raise UnknownMember()
        myself = user_id == actor.id
        if "nick" in fields:
            if myself and not access.has(Permission.MANAGE_NICKNAMES):
                access.require(Permission.CHANGE_NICKNAME)
            elif not myself:
                access.require(Permission.MANAGE_NICKNAMES)
        if "roles" in fields:
            access.require(Permission.MANAGE_ROLES)
        if "communication_disabled_until" in fields:
            access.require(Permission.MODERATE_MEMBERS)
        if "mute" in fields:
            access.require(Permission.MUTE_MEMBERS)
        if "deaf" in fields:
            access.require(Permission.DEAFEN_MEMBERS)
        target = self.require_outranks(access, user_id) if not myself else access
        if myself and "communication_disabled_until" in fields:
            raise MissingPermissions()  # nobody times themselves out (nor lifts their own timeout)

        member_changes = []
        if "nick" in fields:
            nick = fields["nick"] or None
            if nick != member.nick:
                member_changes.append(change("nick", member.nick, nick))
                member.nick = nick
        if "communication_disabled_until" in fields:
            until = fields["communication_disabled_until"]
            if until is not None:
                if until > datetime.now(timezone.utc) + MAX_TIMEOUT:
                    raise InvalidForm.field("communication_disabled_until", "COMMUNICATION_DISABLED_TOO_LONG",
                                            "Timeouts can be at most 28 days")
                if target is not None and (target.is_owner or target.has(Permission.ADMINISTRATOR)):
                    raise MissingPermissions()
            if until != member.communication_disabled_until:
                member_changes.append(change("communication_disabled_until",
                                             timestamp(member.communication_disabled_until), timestamp(until)))
                member.communication_disabled_until = until
        for name in ("mute", "deaf"):
            if name in fields and fields[name] is not None and fields[name] != getattr(member, name):
                member_changes.append(change(name, getattr(member, name), fields[name]))
                setattr(member, name, fields[name])

        role_changes = self._set_roles(access, member, fields["roles"]) if "roles" in fields else []
        if member_changes:
            self._audit(access, AuditAction.MEMBER_UPDATE, user_id, reason=reason, changes=member_changes)
        if role_changes:
            self._audit(access, AuditAction.MEMBER_ROLE_UPDATE, user_id, reason=reason, changes=role_changes)
        if member_changes or role_changes:
            self.guilds._announce_member("GUILD_MEMBER_UPDATE", guild_id, user_id)
        self.session.commit()
        return self.guilds._member_view(member)

    def _set_roles(self, access: GuildAccess, member: Member, role_ids: Iterable[int]) -> list[dict]:
        """Give the member exactly ``role_ids`` (@everyone aside); every role added or taken must be below the
        actor's highest (the owner's aside). The ``$add``/``$remove`` changes of the audit log."""
        guild_id = member.guild_id
        wanted = set(role_ids) - {guild_id}
        held = set(self.session.scalars(select(MemberRole.role_id).where(
            MemberRole.guild_id == guild_id, MemberRole.user_id == member.user_id)))
        added, removed = wanted - held, held - wanted
        roles: dict[int, Role] = {}
        for index, role_id in enumerate(sorted(added | removed)):
            role = self.session.get(Role, role_id)
            if role is None or role.guild_id != guild_id:
                raise InvalidForm.field(("roles", str(index)), "UNKNOWN_ROLE", f"Unknown role {role_id}")
            if not access.outranks(role.position):
                raise MissingPermissions()
            roles[role_id] = role
        for role_id in added:
            add_unless_present(self.session, MemberRole(guild_id=guild_id, user_id=member.user_id, role_id=role_id))
        for role_id in removed:
            self.session.delete(self.session.get(MemberRole, (guild_id, member.user_id, role_id)))
        changes = []
        if added:
            changes.append(change("$add", None, [{"id": str(r), "name": roles[r].name} for r in sorted(added)]))
        if removed:
            changes.append(change("$remove", None, [{"id": str(r), "name": roles[r].name} for r in sorted(removed)]))
        return changes

    # -- kicks and bans ---------------------------------------------------------------------------------------

    def kick(self, actor: UserSnapshot, guild_id: int, user_id: int, *, reason: str | None = None) -> None:
        """DELETE /guilds/{id}/members/{user_id}: KICK_MEMBERS over the hierarchy (leaving is
        DELETE /users/@me/guilds/{id})."""
        access = self.access.guild_access(guild_id, actor)
        if user_id != actor.id:
            access.require(Permission.KICK_MEMBERS)
        if self.session.get(Member, (guild_id, user_id)) is None:
            raise UnknownMember()
        self.require_outranks(access, user_id)
        self._remove_member(guild_id, user_id)
        if user_id != actor.id:
            self._audit(access, AuditAction.MEMBER_KICK, user_id, reason=reason)
        self.session.commit()

    def _remove_member(self, guild_id: int, user_id: int) -> bool:
        member = self.session.get(Member, (guild_id, user_id))
        if member is None:
            return False
        removed = user_json(member.user)
        leave_guild_threads(self.session, self.events, guild_id, user_id)
        self.session.delete(member)
        self._announce("GUILD_MEMBER_REMOVE", guild_id, {"user": removed})
        return True

    def _ban_one(self, access: GuildAccess, user_id: int, reason: str | None) -> User:
        user = self.session.get(User, user_id)
        if user is None:
            raise UnknownUser()
        self.require_outranks(access, user_id)
        if user_id == access.member.user_id:
            raise MissingPermissions()
        guild_id = access.guild.id
        # Two identical bans at once both find none: the later one's insert meets the earlier's row.
        if self.session.get(Ban, (guild_id, user_id)) is None and add_unless_present(
                self.session, Ban(guild_id=guild_id, user_id=user_id, reason=reason,
                                  created_at=datetime.now(timezone.utc))):
            self._announce("GUILD_BAN_ADD", guild_id, {"user": user_json(user)})
            self._audit(access, AuditAction.MEMBER_BAN_ADD, user_id, reason=reason)
        self._remove_member(guild_id, user_id)
        return user

    def _purge(self, guild_id: int, user_ids: Iterable[int], delete_message_seconds: int) -> None:
        if delete_message_seconds <= 0 or self.purge is None:
            return
        since = datetime.now(timezone.utc) - timedelta(seconds=delete_message_seconds)
        for user_id in user_ids:
            self.purge.purge(guild_id, user_id, since)

    def ban(self, actor: UserSnapshot, guild_id: int, user_id: int, *, delete_message_seconds: int = 0,
            reason: str | None = None) -> None:
        """PUT /guilds/{id}/bans/{user_id}: BAN_MEMBERS over the hierarchy. Banning again is not an error (the
        first ban stays); each ban purges the user's messages of its window, after the ban has committed."""
        access = self.access.guild_access(guild_id, actor)
        access.require(Permission.BAN_MEMBERS)
        self._ban_one(access, user_id, reason)
        self.session.commit()
        self._purge(guild_id, [user_id], delete_message_seconds)

    def bulk_ban(self, actor: UserSnapshot, guild_id: int, user_ids: Sequence[int], *, delete_message_seconds: int,
                 reason: str | None = None) -> tuple[list[int], list[int]]:
        """POST /guilds/{id}/bulk-ban: BAN_MEMBERS and MANAGE_GUILD, as Discord. Returns (banned, failed):
        users already banned, unknown or out of the actor's reach fail; none banned at all is 500000."""
        access = self.access.guild_access(guild_id, actor)
        access.require(Permission.BAN_MEMBERS)
        access.require(Permission.MANAGE_GUILD)
        banned, failed = [], []
        for user_id in dict.fromkeys(user_ids):
            if self.session.get(Ban, (guild_id, user_id)) is not None:
                failed.append(user_id)
                continue
            try:
                # _ban_one checks everything before it writes anything, so a refusal leaves nothing to undo.
                self._ban_one(access, user_id, reason)
            except (UnknownUser, MissingPermissions):
                failed.append(user_id)
            else:
                banned.append(user_id)
        if not banned:
            self.session.rollback()
            raise BulkBanFailed()
        self.session.commit()
        self._purge(guild_id, banned, delete_message_seconds)
        return banned, failed

    def unban(self, actor: UserSnapshot, guild_id: int, user_id: int, *, reason: str | None = None) -> None:
        access = self.access.guild_access(guild_id, actor)
        access.require(Permission.BAN_MEMBERS)
        ban = self.session.get(Ban, (guild_id, user_id))
        if ban is None:
            raise UnknownBan()
        user = self.session.get(User, user_id)
        self.session.delete(ban)
        self._announce("GUILD_BAN_REMOVE", guild_id, {"user": user_json(user)})
        self._audit(access, AuditAction.MEMBER_BAN_REMOVE, user_id, reason=reason)
        self.session.commit()

    def bans(self, actor: UserSnapshot, guild_id: int, *, before: int | None, after: int | None,
             limit: int) -> list[Ban]:
        """Bans by user id ascending; with ``before`` (and no ``after``) the ``limit`` just below it."""
        access = self.access.guild_access(guild_id, actor)
        access.require(Permission.BAN_MEMBERS)
        query = select(Ban).where(Ban.guild_id == guild_id)
        if after is not None:
            query = query.where(Ban.user_id > after)
        if before is not None:
            query = query.where(Ban.user_id < before)
        if before is not None and after is None:
            found = list(self.session.scalars(query.order_by(Ban.user_id.desc()).limit(limit)))
            found.reverse()
        else:
            found = list(self.session.scalars(query.order_by(Ban.user_id).limit(limit)))
        self.session.commit()
        return found

    def get_ban(self, actor: UserSnapshot, guild_id: int, user_id: int) -> Ban:
        access = self.access.guild_access(guild_id, actor)
        access.require(Permission.BAN_MEMBERS)
        ban = self.session.get(Ban, (guild_id, user_id))
        if ban is None:
            raise UnknownBan()
        return ban

    # -- search -----------------------------------------------------------------------------------------------

    def search_members(self, actor: UserSnapshot, guild_id: int, query: str, limit: int) -> list[MemberView]:
        """Members whose username or nick starts with ``query`` (case-insensitive), by user id."""
        self.access.guild_access(guild_id, actor)
        pattern = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        members = list(self.session.scalars(
            select(Member).join(User, User.id == Member.user_id)
            .where(Member.guild_id == guild_id,
                   or_(User.username.ilike(pattern, escape="\\"), Member.nick.ilike(pattern, escape="\\")))
            .order_by(Member.user_id).limit(limit)))
        return [self.guilds._member_view(m) for m in members]


def ban_json(ban: Ban) -> dict[str, Any]:
    return {"reason": ban.reason, "user": user_json(ban.user)}
