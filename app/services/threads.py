"""Threads: creating them (from a message, on their own, as forum posts), editing, archiving, deleting, their
members and the lists of active and archived threads, with Discord's rules.

A thread is a channel (its row in ``channels``, type 10, 11 or 12, ``parent_id`` its parent) with a ``threads``
row; its messages live in the message store like any channel's. Permissions come from the parent
(app.auth.permissions.thread_permissions).

Auto-archiving needs no scheduler: a thread whose last activity (creation, newest message, last change of its
archive state) is older than its ``auto_archive_duration`` *is* archived, whenever anyone looks
(:func:`archived_at`). Reads compute it; writes that meet such a thread first write down that it archived (at the
moment it did) and announce it with THREAD_UPDATE, so that what a write then does (reopen it by sending, refuse
an edit) starts from the stored truth.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from app.auth.permissions import Permission, thread_permissions
from app.blobs.base import BlobStore, BlobStoreUnavailable
from app.domain import POST_CHANNEL_TYPES, THREAD_TYPES, ChannelRef, ChannelType
from app.errors import (
    ChannelTypeAction,
    EmptyMessage,
    InvalidForm,
    MissingPermissions,
    ThreadArchived,
    ThreadArchivedLocked,
    ThreadExists,
    ThreadLocked,
    UnknownChannel,
    UnknownMember,
    UnknownMessage,
    WebhookThreadsForumOnly,
)
from app.ids import snowflake_time
from app.messages.base import MessageStore
from app.services.access import AccessService, ChannelAccess
from app.services.audit import AuditAction, diff, record_audit
from app.services.dispatch import SessionEvents
from app.services.guilds import MemberView
from app.services.rows import add_unless_present
from app.services.wire import member_json, message_json, thread_json, thread_member_json
from models import Channel, Member, MemberRole, Thread, ThreadMember

#: Channels whose threads are started from a message or on their own (types 11 and 12; 10 in announcements).
THREAD_PARENT_TYPES = frozenset({ChannelType.GUILD_TEXT, ChannelType.GUILD_ANNOUNCEMENT})
AUTO_ARCHIVE_DURATIONS = (60, 1440, 4320, 10080)
_PUBLIC_THREAD_TYPES = frozenset({ChannelType.PUBLIC_THREAD, ChannelType.ANNOUNCEMENT_THREAD})
#: The message flag of a message a thread was started from.
HAS_THREAD = 1 << 5
#: What a thread's audit log entries (THREAD_CREATE, _UPDATE, _DELETE) show in their ``changes``.
_AUDITED = ("name", "type", "archived", "locked", "auto_archive_duration", "rate_limit_per_user", "invitable")


def audited_state(channel: Channel, thread: Thread) -> dict[str, Any]:
    """The thread's fields as its audit log entries' ``changes`` show them (``invitable`` only for a private
    thread, as its wire object)."""
    state = {"name": channel.name, "type": channel.type, "archived": bool(thread.archived),
             "locked": bool(thread.locked), "auto_archive_duration": thread.auto_archive_duration,
             "rate_limit_per_user": channel.rate_limit_per_user or 0}
    if channel.type == ChannelType.PRIVATE_THREAD:
        state["invitable"] = bool(thread.invitable)
    return {key: state[key] for key in _AUDITED if key in state}


def leave_guild_threads(session: Session, events: SessionEvents, guild_id: int, user_id: int) -> None:
    """A member who leaves the guild (or is kicked or banned) leaves its threads too, as on Discord: a private
    thread does not let them back in should they rejoin. Each thread's THREAD_MEMBERS_UPDATE says so, as when
    they leave it by hand."""
    thread_ids = list(session.scalars(
        select(ThreadMember.thread_id).join(Thread, Thread.channel_id == ThreadMember.thread_id)
        .where(Thread.guild_id == guild_id, ThreadMember.user_id == user_id)))
    if not thread_ids:
        return
    session.execute(delete(ThreadMember).where(ThreadMember.user_id == user_id,
                                               ThreadMember.thread_id.in_(thread_ids)))
    session.execute(update(Thread).where(Thread.channel_id.in_(thread_ids))
                    .values(member_count=Thread.member_count - 1))
    counts = session.execute(select(Thread.channel_id, Thread.member_count)
                             .where(Thread.channel_id.in_(thread_ids)).order_by(Thread.channel_id)).all()
    for thread_id, member_count in counts:
        data = {"id": str(thread_id), "member_count": member_count, "removed_member_ids": [str(user_id)]}
        events.record(session, lambda dispatch, data=data, thread_id=thread_id: [dispatch.thread(
            "THREAD_MEMBERS_UPDATE", data, guild_id=guild_id, channel_id=thread_id)])


def forget_thread_messages(session: Session, channel_id: int, message_ids: Iterable[int]) -> None:
    """The messages ``message_ids`` of the channel were deleted: a thread's ``message_count`` drops by as many,
    but for a forum post's first message (its id the thread's), which it never counted, as on Discord (a channel
    that is no thread has no row to change). The caller commits."""
    count = sum(1 for message_id in message_ids if message_id != channel_id)
    if not count:
        return
    session.execute(update(Thread).where(Thread.channel_id == channel_id).values(
        message_count=func.max(Thread.message_count - count, 0)
        if session.get_bind().dialect.name == "sqlite"
        else func.greatest(Thread.message_count - count, 0)))


def record_thread_deleted(session: Session, events: SessionEvents, channel: Channel) -> None:
    """THREAD_DELETE of a thread deleted in ``session``'s transaction (alone, or with its parent), recorded on the
    parent channel."""
    events.record(session, lambda dispatch: [dispatch.thread(
        "THREAD_DELETE", {"id": str(channel.id), "parent_id": str(channel.parent_id), "type": channel.type},
        guild_id=channel.guild_id, channel_id=channel.parent_id)])


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def last_activity(channel: Channel, thread: Thread) -> datetime:
    """When the thread was last active: created, sent to, or archived or reopened."""
    moments = [thread.created_at, thread.archive_timestamp]
    if channel.last_message_id is not None:
        moments.append(snowflake_time(channel.last_message_id))
    return max(moments)


def archived_at(channel: Channel, thread: Thread, now: datetime) -> datetime | None:
    """When the thread was archived (by hand, or by ``auto_archive_duration`` minutes of inactivity), None while
    it is active."""
    if thread.archived:
        return thread.archive_timestamp
    due = last_activity(channel, thread) + timedelta(minutes=thread.auto_archive_duration)
    return due if due <= now else None


@dataclass(frozen=True)
class ThreadPage:
    """A list route's answer: threads (channel, row, archived_at), the caller's memberships among them, more."""

    threads: list[tuple[Channel, Thread, datetime | None]]
    members: list[ThreadMember]
    has_more: bool = False


class ThreadService:
    def __init__(self, session: Session, ids, *, events: SessionEvents, store: MessageStore | None = None,
                 blobs: BlobStore | None = None, messages=None, clock=utcnow):
        self.session = session
        self.ids = ids
        self.events = events
        self.store = store
        self.blobs = blobs
        #: The MessageService that posts a forum thread's first message and flags a thread's starter message.
        self.messages = messages
        self.clock = clock
        self.access = AccessService(session)

    # -- serializing and events -------------------------------------------------------------------------------

    def json(self, channel: Channel, thread: Thread | None = None) -> dict[str, Any]:
        thread = thread or self._row(channel.id)
        return thread_json(channel, thread, archived_at(channel, thread, self.clock()))

    def _announce(self, type_: str, channel: Channel, thread: Thread, **extra: Any) -> None:
        data = {**self.json(channel, thread), **extra}
        self.events.record(self.session, lambda dispatch: [dispatch.thread(
            type_, data, guild_id=channel.guild_id, channel_id=channel.id)])

    def _announce_members(self, channel: Channel, thread: Thread, *, added: Sequence[ThreadMember] = (),
                          removed: Sequence[int] = ()) -> None:
        data: dict[str, Any] = {"id": str(channel.id), "member_count": thread.member_count}
        if added:
            members = self._member_objects(channel.guild_id, [row.user_id for row in added])
            data["added_members"] = [{**thread_member_json(row, members.get(row.user_id)), "presence": None}
                                     for row in added]
        if removed:
            data["removed_member_ids"] = [str(user_id) for user_id in removed]
        self.events.record(self.session, lambda dispatch: [dispatch.thread(
            "THREAD_MEMBERS_UPDATE", data, guild_id=channel.guild_id, channel_id=channel.id)])

    def _announce_own_member(self, channel: Channel, row: ThreadMember) -> None:
        """THREAD_MEMBER_UPDATE: the joining user's own thread member object, for that user's sessions only."""
        data = thread_member_json(row)
        self.events.record(self.session, lambda dispatch: [dispatch.thread(
            "THREAD_MEMBER_UPDATE", data, guild_id=channel.guild_id, channel_id=channel.id)])

    # -- lookups ---------------------------------------------------------------------------------------------

    def _row(self, thread_id: int) -> Thread:
        thread = self.session.get(Thread, thread_id)
        if thread is None:
            raise UnknownChannel()
        return thread

    def _thread_access(self, user, thread_id: int) -> tuple[ChannelAccess, Thread]:
        """Access to a thread the user can see (a private one: its members and MANAGE_THREADS holders)."""
        access = self.access.channel_access(thread_id, user)
        if access.channel.type not in THREAD_TYPES:
            raise ChannelTypeAction()
        return access, self._row(thread_id)

    def _settle(self, channel: Channel, thread: Thread) -> datetime | None:
        """Write down an archiving by inactivity that nobody observed yet (with THREAD_UPDATE); the thread's
        archive time, or None when it is active."""
        when = archived_at(channel, thread, self.clock())
        if when is not None and not thread.archived:
            thread.archived, thread.archive_timestamp = True, when
            self._announce("THREAD_UPDATE", channel, thread)
        return when

    def _member_objects(self, guild_id: int, user_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        if not user_ids:
            return {}
        members = self.session.scalars(select(Member).where(Member.guild_id == guild_id,
                                                            Member.user_id.in_(user_ids))).all()
        roles: dict[int, list[int]] = {}
        for user_id, role_id in self.session.execute(select(MemberRole.user_id, MemberRole.role_id).where(
                MemberRole.guild_id == guild_id, MemberRole.user_id.in_(user_ids))):
            roles.setdefault(user_id, []).append(role_id)
        return {m.user_id: member_json(MemberView(m, sorted(roles.get(m.user_id, [])))) for m in members}

    # -- creating --------------------------------------------------------------------------------------------

    def create_from_message(self, user, channel_id: int, message_id: int, fields: dict[str, Any], *,
                            reason: str | None = None) -> dict:
        """A public thread (an announcement thread in an announcement channel) whose id is the message's."""
        access = self.access.channel_access(channel_id, user)
        parent = access.channel
        if parent.type not in THREAD_PARENT_TYPES:
            raise ChannelTypeAction()
        access.require(Permission.CREATE_PUBLIC_THREADS)
        access.require(Permission.READ_MESSAGE_HISTORY)
        self.session.commit()
        # The store may need the connection a transaction would hold (SQLite): none is open during this read.
        message = self.store.get_message(channel_id, message_id) if self.store is not None else None
        if message is None:
            raise UnknownMessage()
        if self.session.get(Channel, message_id) is not None:
            raise ThreadExists()
        type_ = (ChannelType.ANNOUNCEMENT_THREAD if parent.type == ChannelType.GUILD_ANNOUNCEMENT
                 else ChannelType.PUBLIC_THREAD)
        channel, thread = self._create(user, self.session.get(Channel, channel_id), message_id, type_, fields,
                                       reason=reason)
        body = self.json(channel, thread)
        if self.messages is not None:
            self.messages.mark_thread_started(user, channel_id, message, HAS_THREAD)
        return body

    def create(self, user, channel_id: int, fields: dict[str, Any], uploads: Sequence = (), *,
               reason: str | None = None) -> dict:
        """A thread without a message in a text or announcement channel, or a post (with its first message) in a
        forum or media channel."""
        access = self.access.channel_access(channel_id, user)
        parent = access.channel
        starter = fields.get("message")
        if parent.type in POST_CHANNEL_TYPES:
            if starter is None:
                raise InvalidForm.field("message", "BASE_TYPE_REQUIRED", "This field is required")
            if fields.get("type") not in (None, ChannelType.PUBLIC_THREAD):
                raise InvalidForm.field("type", "BASE_TYPE_CHOICES", "A post is a public thread (11)")
            # Posting needs SEND_MESSAGES in the forum itself; the first message is part of the post.
            access.require(Permission.SEND_MESSAGES)
            if not (starter.get("content") or "").strip() and not starter.get("embeds") and not starter.get(
                    "components") and not uploads:
                raise EmptyMessage()
            type_ = ChannelType.PUBLIC_THREAD
        elif parent.type in THREAD_PARENT_TYPES:
            if starter is not None:
                raise InvalidForm.field("message", "THREAD_MESSAGE_FORUM_ONLY",
                                        "Only threads of forum and media channels start with a message")
            if fields.get("applied_tags"):
                raise InvalidForm.field("applied_tags", "THREAD_TAGS_FORUM_ONLY",
                                        "Only threads of forum and media channels have tags")
            # Discord's default in API v9 and later is a private thread.
            type_ = fields.get("type") or ChannelType.PRIVATE_THREAD
            if type_ == ChannelType.ANNOUNCEMENT_THREAD and parent.type != ChannelType.GUILD_ANNOUNCEMENT:
                raise InvalidForm.field("type", "BASE_TYPE_CHOICES", "Announcement threads need an announcement "
                                                                     "channel")
            if type_ == ChannelType.PRIVATE_THREAD:
                access.require(Permission.CREATE_PRIVATE_THREADS)
            else:
                access.require(Permission.CREATE_PUBLIC_THREADS)
        else:
            raise ChannelTypeAction()
        # discord.py sends ``invitable: true`` (the default, which asks for nothing) for every thread.
        if fields.get("invitable") is False and type_ != ChannelType.PRIVATE_THREAD:
            raise InvalidForm.field("invitable", "THREAD_INVITABLE_PRIVATE_ONLY", "Only private threads are "
                                                                                  "invitable or not")
        self._check_tags(fields.get("applied_tags"))
        thread_id = self.ids.next_id()
        # A post's entry waits for its first message: a post taken back leaves none.
        channel, thread = self._create(user, self.session.get(Channel, channel_id), thread_id, type_, fields,
                                       reason=reason, audited=starter is None)
        state = audited_state(channel, thread)
        body = self.json(channel, thread)
        if starter is not None:
            try:
                bundle = self.messages.create_message(user, thread_id, starter, uploads, message_id=thread_id,
                                                      starter=True)
            except Exception:
                self._take_back(thread_id)
                raise
            body["message"] = message_json(bundle.messages[0], bundle)
            self._audit(user, self.session.get(Channel, thread_id), AuditAction.THREAD_CREATE, diff({}, state),
                        reason)
            self.session.commit()
        return body

    def _take_back(self, thread_id: int) -> None:
        """The post and its message come together: a message refused (say, a bad attachment) takes the post away
        again."""
        self.session.rollback()
        self._announce_deleted(self.session.get(Channel, thread_id))
        self._delete(self.session.get(Channel, thread_id))
        self.session.commit()

    def create_webhook_post(self, webhook, parent_id: int, name: str,
                            send: Callable[[ChannelRef], Any]) -> Any:
        """A post in a forum or media channel by its webhook (executed with ``thread_name``): the thread, owned by
        the webhook (which does not join it), then its first message, ``send(thread)``, whose result is
        returned. Refused (220003) in another type of channel. Not audited: the token routes act for no user."""
        parent = self.session.get(Channel, parent_id)
        if parent is None:
            raise UnknownChannel()
        if parent.type not in POST_CHANNEL_TYPES:
            raise WebhookThreadsForumOnly()
        thread_id = self.ids.next_id()
        channel, _ = self._create(webhook, parent, thread_id, ChannelType.PUBLIC_THREAD, {"name": name},
                                  audited=False, owner_joins=False)
        thread = ChannelRef.of(channel)
        try:
            return send(thread)
        except Exception:
            self._take_back(thread_id)
            raise

    def webhook_thread(self, parent_id: int, thread_id: int) -> ChannelRef:
        """The thread of the webhook's channel ``parent_id`` that ``thread_id`` names; Unknown Channel for any
        other channel, as on Discord."""
        channel = self.session.get(Channel, thread_id)
        if channel is None or channel.type not in THREAD_TYPES or channel.parent_id != parent_id:
            raise UnknownChannel()
        return ChannelRef.of(channel)

    @staticmethod
    def _check_tags(tags: Sequence[int] | None) -> None:
        # Forum tags (a forum's available_tags) are not implemented: no tag id exists to apply.
        if tags:
            raise InvalidForm.field(("applied_tags", "0"), "UNKNOWN_TAG", "Unknown tag")

    def _create(self, user, parent: Channel, thread_id: int, type_: int, fields: dict[str, Any], *,
                reason: str | None = None, audited: bool = True, owner_joins: bool = True):
        """The thread's rows, THREAD_CREATE and (when ``audited``: a member's, not a webhook's) its audit entry;
        ``owner_joins``: the creator becomes its first member (a webhook does not)."""
        now = self.clock()
        channel = Channel(id=thread_id, guild_id=parent.guild_id, type=type_, name=fields["name"], position=0,
                          parent_id=parent.id, nsfw=parent.nsfw,
                          rate_limit_per_user=fields.get("rate_limit_per_user") or 0)
        thread = Thread(channel_id=thread_id, guild_id=parent.guild_id, parent_id=parent.id, owner_id=user.id,
                        archived=False, auto_archive_duration=fields.get("auto_archive_duration") or 1440,
                        archive_timestamp=now, locked=False,
                        invitable=True if fields.get("invitable") is None else fields["invitable"],
                        created_at=now, message_count=0, total_message_sent=0, member_count=int(owner_joins),
                        applied_tags="[]", flags=0)
        self.session.add(channel)
        self.session.flush()
        self.session.add(thread)
        if owner_joins:
            self.session.add(ThreadMember(thread_id=thread_id, user_id=user.id, join_timestamp=now, flags=0))
        self.session.flush()
        self._announce("THREAD_CREATE", channel, thread, newly_created=True)
        if audited:
            self._audit(user, channel, AuditAction.THREAD_CREATE, diff({}, audited_state(channel, thread)), reason)
        self.session.commit()
        return channel, thread

    # -- editing and deleting ---------------------------------------------------------------------------------

    def _audit(self, user, channel: Channel, action: AuditAction, changes: list[dict], reason: str | None) -> None:
        record_audit(self.session, self.ids, self.events, guild_id=channel.guild_id, user_id=user.id,
                     action_type=action, target_id=channel.id, changes=changes, reason=reason)

    def edit(self, user, thread_id: int, fields: dict[str, Any], *, reason: str | None = None) -> dict:
        """PATCH /channels/{thread}: the owner or MANAGE_THREADS change name, archive state and duration; only
        MANAGE_THREADS locks, sets ``invitable`` and slow mode. An archived thread must be reopened by the same
        request; reopening an unlocked one is the one edit anyone who may send makes (Discord's rule for
        ``archived: false``). An edit that changes nothing announces nothing and leaves no audit entry."""
        access, thread = self._thread_access(user, thread_id)
        channel = access.channel
        manager = access.has(Permission.MANAGE_THREADS)
        owner = thread.owner_id == user.id
        when = self._settle(channel, thread)
        # After the settling: an archiving by inactivity is the system's, not part of this member's changes.
        before = audited_state(channel, thread)
        shown = self.json(channel, thread)
        reopening = fields.get("archived") is False
        if when is not None and not reopening:
            raise ThreadArchived()
        if reopening and when is not None:
            if thread.locked and not manager:
                raise MissingPermissions()
            if not (manager or owner or access.has(Permission.SEND_MESSAGES)):
                raise MissingPermissions()
        elif not (manager or owner):
            # Not a reopening: only the owner and MANAGE_THREADS edit a thread, even with nothing to change.
            raise MissingPermissions()
        for name in ("locked", "invitable", "rate_limit_per_user"):
            if fields.get(name) is not None and not manager:
                raise MissingPermissions()
        for name in ("name", "auto_archive_duration", "applied_tags"):
            if fields.get(name) is not None and not (manager or owner):
                raise MissingPermissions()
        if fields.get("archived") is True and not (manager or owner):
            raise MissingPermissions()
        if fields.get("invitable") is False and channel.type != ChannelType.PRIVATE_THREAD:
            raise InvalidForm.field("invitable", "THREAD_INVITABLE_PRIVATE_ONLY",
                                    "Only private threads are invitable or not")
        if fields.get("applied_tags") is not None:
            self._check_tags(fields["applied_tags"])
            thread.applied_tags = orjson.dumps([str(t) for t in fields["applied_tags"]]).decode()
        if fields.get("name") is not None:
            channel.name = fields["name"]
        if fields.get("rate_limit_per_user") is not None:
            channel.rate_limit_per_user = fields["rate_limit_per_user"]
        for name in ("auto_archive_duration", "locked", "invitable"):
            if fields.get(name) is not None:
                setattr(thread, name, fields[name])
        if fields.get("archived") is not None and fields["archived"] != (when is not None):
            thread.archived, thread.archive_timestamp = fields["archived"], self.clock()
        if self.json(channel, thread) != shown:
            self._announce("THREAD_UPDATE", channel, thread)
        changes = diff(before, audited_state(channel, thread))
        if changes:
            self._audit(user, channel, AuditAction.THREAD_UPDATE, changes, reason)
        self.session.commit()
        return self.json(channel, thread)

    def delete(self, user, thread_id: int, *, reason: str | None = None) -> dict:
        access, thread = self._thread_access(user, thread_id)
        access.require(Permission.MANAGE_THREADS)
        channel = access.channel
        body = self.json(channel, thread)
        self._audit(user, channel, AuditAction.THREAD_DELETE, diff(audited_state(channel, thread), {}), reason)
        self._announce_deleted(channel)
        self._delete(channel)
        self.session.commit()
        self._delete_contents([thread_id])
        return body

    def _announce_deleted(self, channel: Channel | None) -> None:
        if channel is not None:
            record_thread_deleted(self.session, self.events, channel)

    def _delete(self, channel: Channel | None) -> None:
        if channel is not None:
            self.session.delete(channel)
            self.session.flush()

    def _delete_contents(self, thread_ids: Sequence[int]) -> None:
        """After the threads' rows are gone: their messages, then their files (orphans at worst)."""
        for thread_id in thread_ids:
            if self.store is not None:
                self.store.delete_channel(thread_id)
            if self.blobs is not None:
                try:
                    self.blobs.delete_under(str(thread_id))
                except BlobStoreUnavailable:
                    pass

    # -- sending (MessageService's hooks) ---------------------------------------------------------------------

    def before_send(self, user, access: ChannelAccess, *, starter: bool = False, joins: bool = True) -> None:
        """Before a message goes to a thread: an archived thread reopens (refused when it is locked and the sender
        lacks MANAGE_THREADS), a locked one takes only MANAGE_THREADS holders, and the sender joins (unless
        ``joins`` is false: a webhook is no member)."""
        if access.channel.type not in THREAD_TYPES:
            return
        channel, thread = self._rows(access.channel.id)
        manager = access.has(Permission.MANAGE_THREADS)
        if not starter:
            when = self._settle(channel, thread)
            if when is not None:
                if thread.locked and not manager:
                    self.session.commit()
                    raise ThreadArchivedLocked()
                thread.archived, thread.archive_timestamp = False, self.clock()
                self._announce("THREAD_UPDATE", channel, thread)
            elif thread.locked and not manager:
                self.session.commit()
                raise ThreadLocked()
        if joins:
            self._join(channel, thread, user.id)
        self.session.commit()

    def _rows(self, thread_id: int) -> tuple[Channel, Thread]:
        """The thread's channel and thread rows, gone meanwhile: Unknown Channel."""
        channel, thread = self.session.get(Channel, thread_id), self.session.get(Thread, thread_id)
        if channel is None or thread is None:
            raise UnknownChannel()
        return channel, thread

    def before_change(self, access: ChannelAccess) -> None:
        """Before a thread's messages are edited or deleted: an archived thread refuses (50083) whoever asks,
        MANAGE_THREADS holders included, as Discord does; only a send reopens a thread by itself, an edit or a
        delete needs it reopened first."""
        if access.channel.type not in THREAD_TYPES:
            return
        channel, thread = self._rows(access.channel.id)
        archived = self._settle(channel, thread) is not None
        self.session.commit()
        if archived:
            raise ThreadArchived()

    def after_send(self, thread_id: int, *, starter: bool = False) -> None:
        if starter:
            return
        self.session.execute(update(Thread).where(Thread.channel_id == thread_id).values(
            message_count=Thread.message_count + 1, total_message_sent=Thread.total_message_sent + 1))
        self.session.commit()

    def after_delete(self, thread_id: int, message_ids: Iterable[int]) -> None:
        forget_thread_messages(self.session, thread_id, message_ids)
        self.session.commit()

    # -- members ---------------------------------------------------------------------------------------------

    def _join(self, channel: Channel, thread: Thread, user_id: int) -> bool:
        if self.session.get(ThreadMember, (channel.id, user_id)) is not None:
            return False
        row = ThreadMember(thread_id=channel.id, user_id=user_id, join_timestamp=self.clock(), flags=0)
        if not add_unless_present(self.session, row):
            return False
        self.session.execute(update(Thread).where(Thread.channel_id == channel.id)
                             .values(member_count=Thread.member_count + 1))
        self.session.refresh(thread)
        self._announce_members(channel, thread, added=[row])
        self._announce_own_member(channel, row)
        if channel.type == ChannelType.PRIVATE_THREAD:
            # Discord's THREAD_CREATE for a user added to a private thread: with their thread member, for them only.
            self._announce("THREAD_CREATE", channel, thread, member=thread_member_json(row))
        return True

    def _open_thread(self, user, thread_id: int) -> tuple[ChannelAccess, Thread]:
        """A thread whose members may change: archived ones refuse (50083)."""
        access, thread = self._thread_access(user, thread_id)
        if self._settle(access.channel, thread) is not None:
            self.session.commit()
            raise ThreadArchived()
        return access, thread

    def add_member(self, user, thread_id: int, target_id: int) -> None:
        """PUT thread-members/@me (``target_id`` the caller) or /{user_id}: adding another needs to be able to
        send in the thread, and for a private thread that is not ``invitable``, MANAGE_THREADS."""
        access, thread = self._open_thread(user, thread_id)
        channel = access.channel
        if target_id != user.id:
            access.require(Permission.SEND_MESSAGES)
            if channel.type == ChannelType.PRIVATE_THREAD and not thread.invitable and not access.has(
                    Permission.MANAGE_THREADS) and thread.owner_id != user.id:
                raise MissingPermissions()
            if self.session.get(Member, (channel.guild_id, target_id)) is None:
                raise UnknownMember()
        self._join(channel, thread, target_id)
        self.session.commit()

    def remove_member(self, user, thread_id: int, target_id: int) -> None:
        """DELETE thread-members/@me or /{user_id}: removing another needs MANAGE_THREADS, or to be the owner of
        a private thread."""
        access, thread = self._open_thread(user, thread_id)
        channel = access.channel
        if target_id != user.id and not access.has(Permission.MANAGE_THREADS) and not (
                channel.type == ChannelType.PRIVATE_THREAD and thread.owner_id == user.id):
            raise MissingPermissions()
        row = self.session.get(ThreadMember, (thread_id, target_id))
        if row is None:
            if target_id == user.id:
                return
            raise UnknownMember()
        self.session.delete(row)
        self.session.flush()
        self.session.execute(update(Thread).where(Thread.channel_id == thread_id)
                             .values(member_count=Thread.member_count - 1))
        self.session.refresh(thread)
        self._announce_members(channel, thread, removed=[target_id])
        self.session.commit()

    def get_member(self, user, thread_id: int, target_id: int, *, with_member: bool) -> dict:
        access, _ = self._thread_access(user, thread_id)
        row = self.session.get(ThreadMember, (thread_id, target_id))
        if row is None:
            raise UnknownMember()
        member = self._member_objects(access.channel.guild_id, [target_id]).get(target_id) if with_member else None
        return thread_member_json(row, member)

    def list_members(self, user, thread_id: int, *, with_member: bool, after: int | None, limit: int) -> list:
        access, _ = self._thread_access(user, thread_id)
        statement = select(ThreadMember).where(ThreadMember.thread_id == thread_id)
        if after is not None:
            statement = statement.where(ThreadMember.user_id > after)
        rows = self.session.scalars(statement.order_by(ThreadMember.user_id).limit(limit)).all()
        members = self._member_objects(access.channel.guild_id, [r.user_id for r in rows]) if with_member else {}
        return [thread_member_json(row, members.get(row.user_id) if with_member else None) for row in rows]

    # -- lists -----------------------------------------------------------------------------------------------

    def _visible(self, user, guild_access, rows: Sequence[tuple[Channel, Thread]]) -> list[tuple[Channel, Thread]]:
        """The threads among ``rows`` the user can see, from their parents' permissions."""
        parents: dict[int, int] = {}
        private_ids = [c.id for c, _ in rows if c.type == ChannelType.PRIVATE_THREAD]
        joined = set(self.session.scalars(select(ThreadMember.thread_id).where(
            ThreadMember.user_id == user.id, ThreadMember.thread_id.in_(private_ids)))) if private_ids else set()
        visible = []
        for channel, thread in rows:
            if channel.parent_id not in parents:
                parent = self.session.get(Channel, channel.parent_id)
                parents[channel.parent_id] = (AccessService._permissions_in(guild_access, parent, user.id)
                                              if parent is not None else 0)
            bits = thread_permissions(parents[channel.parent_id], private=channel.type == ChannelType.PRIVATE_THREAD,
                                      is_member=channel.id in joined)
            if bits & Permission.VIEW_CHANNEL:
                visible.append((channel, thread))
        return visible

    def _own_memberships(self, user, thread_ids: Sequence[int]) -> list[ThreadMember]:
        if not thread_ids:
            return []
        return list(self.session.scalars(select(ThreadMember).where(
            ThreadMember.user_id == user.id, ThreadMember.thread_id.in_(thread_ids)).order_by(ThreadMember.thread_id)))

    def active(self, user, guild_id: int) -> ThreadPage:
        """GET /guilds/{id}/threads/active: the guild's unarchived threads the user can see."""
        guild_access = self.access.guild_access(guild_id, user)
        now = self.clock()
        rows = self.session.execute(select(Channel, Thread).join(Thread, Thread.channel_id == Channel.id)
                                    .where(Thread.guild_id == guild_id, Thread.archived.is_(False))
                                    .order_by(Channel.id.desc())).all()
        active = [(c, t) for c, t in rows if archived_at(c, t, now) is None]
        visible = self._visible(user, guild_access, active)
        return ThreadPage(threads=[(c, t, None) for c, t in visible],
                          members=self._own_memberships(user, [c.id for c, _ in visible]))

    def archived(self, user, channel_id: int, *, kind: str, before: datetime | int | None, limit: int) -> ThreadPage:
        """Archived threads of a channel, the most recently archived first: ``public`` ones, ``private`` ones
        (MANAGE_THREADS), or the private ones the user ``joined`` (newest thread first, ``before`` a thread id).

        Threads archived by inactivity that nobody wrote down yet are among them: the active rows (few: a
        channel's unarchived threads) are checked here, the stored ones come ordered from the database."""
        access = self.access.channel_access(channel_id, user)
        if access.channel.type in THREAD_TYPES:
            raise ChannelTypeAction()
        access.require(Permission.READ_MESSAGE_HISTORY)
        if kind == "private":
            access.require(Permission.MANAGE_THREADS)
        types = _PUBLIC_THREAD_TYPES if kind == "public" else {ChannelType.PRIVATE_THREAD}
        now = self.clock()
        base = (select(Channel, Thread).join(Thread, Thread.channel_id == Channel.id)
                .where(Thread.parent_id == channel_id, Channel.type.in_(types)))
        if kind == "joined":
            base = base.join(ThreadMember, (ThreadMember.thread_id == Channel.id)
                             & (ThreadMember.user_id == user.id))
        stored = base.where(Thread.archived.is_(True))
        if kind == "joined":
            if isinstance(before, int):
                stored = stored.where(Channel.id < before)
            stored = stored.order_by(Channel.id.desc())
        else:
            if isinstance(before, datetime):
                stored = stored.where(Thread.archive_timestamp < before)
            stored = stored.order_by(Thread.archive_timestamp.desc(), Channel.id.desc())
        found = [(c, t, t.archive_timestamp) for c, t in self.session.execute(stored.limit(limit + 1)).all()]
        for channel, thread in self.session.execute(base.where(Thread.archived.is_(False))).all():
            when = archived_at(channel, thread, now)
            if when is None:
                continue
            if kind == "joined" and isinstance(before, int) and channel.id >= before:
                continue
            if kind != "joined" and isinstance(before, datetime) and when >= before:
                continue
            found.append((channel, thread, when))
        if kind == "joined":
            found.sort(key=lambda item: item[0].id, reverse=True)
        else:
            found.sort(key=lambda item: (item[2], item[0].id), reverse=True)
        page = found[:limit]
        return ThreadPage(threads=page, members=self._own_memberships(user, [c.id for c, _, _ in page]),
                          has_more=len(found) > limit)

    def page_json(self, page: ThreadPage) -> dict[str, Any]:
        return {"threads": [thread_json(c, t, when) for c, t, when in page.threads],
                "members": [thread_member_json(row) for row in page.members]}
