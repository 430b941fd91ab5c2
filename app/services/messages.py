"""Messages: reading history, sending, editing and deleting, with Discord's rules.

Metadata (channels, members, users) is read through the SQL session; messages through the message store.
The session's transaction is always ended before a store call: on SQLite the process has a single
connection, which the SQL message store needs too.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.permissions import Permission
from app.blobs.links import AttachmentLinks
from app.domain import (
    THREAD_TYPES,
    ChannelPermissions,
    ChannelRef,
    ChannelType,
    MessageReferenceType,
    MessageType,
    UserSnapshot,
)
from app.errors import (
    BulkDeleteCount,
    BulkDeleteTooOld,
    CannotEditOthersMessage,
    CannotReplyWithoutHistory,
    EmptyMessage,
    InvalidForm,
    MissingAccess,
    NonTextChannel,
    SystemMessageAction,
    UnknownMessage,
)
from app.ids import MAX_SNOWFLAKE, snowflake_time
from app.messages.base import Message, MessageStore, ReactionCount
from app.read_cache import NO_CACHE, KeptPage, ReadPath
from app.services.access import AccessService, ChannelAccess
from app.services.attachments import AttachmentService, Upload, attachment_records
from app.services.audit import AuditAction, record_audit_after_write
from app.services.channel_writes import ChannelWrites
from app.services.dispatch import Dispatch
from app.services.wire import message_json
from models import Role, User
from models.base import begin_read_only

TEXT_CHANNEL_TYPES = frozenset({ChannelType.GUILD_TEXT, ChannelType.GUILD_ANNOUNCEMENT, ChannelType.DM,
                                *THREAD_TYPES})
TYPE_DEFAULT, TYPE_REPLY = MessageType.DEFAULT, MessageType.REPLY
DELETABLE_TYPES = frozenset({
    MessageType.DEFAULT, MessageType.CHANNEL_PINNED_MESSAGE, MessageType.USER_JOIN, MessageType.GUILD_BOOST,
    MessageType.GUILD_BOOST_TIER_1, MessageType.GUILD_BOOST_TIER_2, MessageType.GUILD_BOOST_TIER_3,
    MessageType.CHANNEL_FOLLOW_ADD, MessageType.THREAD_CREATED, MessageType.REPLY, MessageType.CHAT_INPUT_COMMAND,
    MessageType.GUILD_INVITE_REMINDER, MessageType.CONTEXT_MENU_COMMAND, MessageType.AUTO_MODERATION_ACTION})
REPLYABLE_TYPES = frozenset({TYPE_DEFAULT, TYPE_REPLY})
SUPPRESS_EMBEDS, SUPPRESS_NOTIFICATIONS = 1 << 2, 1 << 12
SETTABLE_FLAGS_ON_CREATE = SUPPRESS_EMBEDS | SUPPRESS_NOTIFICATIONS
BULK_DELETE_MAX_AGE = timedelta(days=14)
#: What a webhook may do in its channel: Discord checks no member's permissions when a webhook executes (its
#: token is the credential), and a webhook's message may carry files, embeds and any mention.
WEBHOOK_PERMISSIONS = (Permission.VIEW_CHANNEL | Permission.SEND_MESSAGES | Permission.SEND_TTS_MESSAGES
                       | Permission.EMBED_LINKS | Permission.ATTACH_FILES | Permission.MENTION_EVERYONE)

# [0-9], not \d: \d also matches other scripts' digits, which int() would read as an id.
_USER_MENTION = re.compile(r"<@!?([0-9]{1,20})>")
_ROLE_MENTION = re.compile(r"<@&([0-9]{1,20})>")
_EVERYONE_MENTION = re.compile(r"@(everyone|here)")


def _mentioned_ids(pattern: re.Pattern, content: str) -> list[int]:
    """Distinct ids the content mentions, in order. Digits past the largest snowflake name nobody (and the
    database could not even compare them), so they are not mentions."""
    return list(dict.fromkeys(i for i in map(int, pattern.findall(content)) if i <= MAX_SNOWFLAKE))


@dataclass(eq=False)
class MessageBundle:
    """Messages with what their wire objects need: authors and mentioned users, reactions, replies.

    A page kept in the read cache is one bundle answered to many requests: nothing may change it once built.
    """

    messages: list[Message]
    users: dict[int, UserSnapshot] = field(default_factory=dict)
    reactions: dict[int, list[ReactionCount]] = field(default_factory=dict)
    referenced: dict[int, Message | None] = field(default_factory=dict)
    guild_id: int | None = None
    nonce: str | int | None = None
    #: Signs the attachments' links when the bundle is rendered; None renders bare paths (exports).
    links: AttachmentLinks | None = None


def _kept_page(bundle: MessageBundle) -> KeptPage:
    """The page as every viewer may be answered it. What depends on the request: ``me`` of each reaction, and the
    attachments' links, signed under the host the request came to (without PUBLIC_BASE_URL) and for a time from
    now: a link signed for one request's Host header must never reach another viewer."""
    has_attachments = any(m is not None and m.attachments_json
                          for m in [*bundle.messages, *bundle.referenced.values()])
    if not bundle.reactions:
        return KeptPage(bundle=bundle, has_reactions=False, has_attachments=has_attachments)
    anonymous = {message_id: [ReactionCount(r.emoji, r.count, False) for r in counts]
                 for message_id, counts in bundle.reactions.items()}
    return KeptPage(bundle=MessageBundle(messages=bundle.messages, users=bundle.users, reactions=anonymous,
                                         referenced=bundle.referenced, guild_id=bundle.guild_id,
                                         links=bundle.links), has_reactions=True, has_attachments=has_attachments)


class MessageLookup:
    """What every message service looks up: a user's access to a channel, a message by id, and the users,
    reactions and replies that serializing messages needs. Reads go through ``reads``, the request's read path.

    The session's transaction is always ended before a store call: on SQLite the process has a single
    connection, which the SQL message store needs too.
    """

    def __init__(self, session: Session, store: MessageStore, reads: ReadPath = NO_CACHE,
                 links: AttachmentLinks | None = None):
        self.session = session
        self.store = store
        self.reads = reads
        self.links = links

    def channel_access(self, user: UserSnapshot, channel_id: int) -> ChannelAccess:
        kept = self.reads.channel_permissions(channel_id, user.id)
        if kept is not None:
            return ChannelAccess(channel=kept.channel, guild=None, permissions=kept.permissions)
        begin_read_only(self.session)
        full = AccessService(self.session).channel_access(channel_id, user)
        self.session.commit()
        # A timeout's end changes the permissions without a write: the entry lasts until then.
        timeout = full.guild.member.communication_disabled_until if full.guild is not None else None
        kept = ChannelPermissions(channel=ChannelRef.of(full.channel), permissions=full.permissions,
                                  until=timeout if timeout is not None and timeout > datetime.now(timezone.utc)
                                  else None)
        self.reads.keep_channel_permissions(user.id, kept)
        return ChannelAccess(channel=kept.channel, guild=None, permissions=kept.permissions)

    def readable_access(self, user: UserSnapshot, channel_id: int) -> ChannelAccess:
        """Access to a channel's history; without READ_MESSAGE_HISTORY no message, nor its existence, leaks."""
        access = self.channel_access(user, channel_id)
        if not access.has(Permission.READ_MESSAGE_HISTORY):
            raise MissingAccess()
        return access

    def existing_message(self, access: ChannelAccess, message_id: int) -> Message:
        message = self.store.get_message(access.channel.id, message_id)
        if message is None:
            raise UnknownMessage()
        return message

    def message_to_change(self, access: ChannelAccess, user: UserSnapshot, message_id: int) -> Message:
        """The message an edit or delete targets. Without READ_MESSAGE_HISTORY a caller knows of their own
        messages only: another's is Unknown Message, the very answer a missing id gets, so no write tells them
        which ids exist."""
        message = self.existing_message(access, message_id)
        if message.author_id != user.id and not access.has(Permission.READ_MESSAGE_HISTORY):
            raise UnknownMessage()
        return message

    def bundle(self, messages: list[Message], access: ChannelAccess, viewer: UserSnapshot, *,
               with_references: bool = True, new: bool = False) -> MessageBundle:
        """Load what serializing ``messages`` needs, in one query per kind. ``new`` messages, just created,
        have no reactions yet (the messages they reply to may)."""
        channel_id = access.channel.id
        return self._bundle(
            messages, viewer, access.channel.guild_id, with_references=with_references, new=new,
            read_messages=lambda keys: self.store.get_messages(channel_id, [i for _, i in keys]),
            read_reactions=lambda keys: self.store.reaction_counts(channel_id, [i for _, i in keys], viewer.id))

    def bundle_across_channels(self, messages: list[Message], guild_id: int | None,
                               viewer: UserSnapshot) -> MessageBundle:
        """:meth:`bundle` for messages of many channels of a guild (search results), still one store call per
        kind rather than one per channel."""
        return self._bundle(
            messages, viewer, guild_id, with_references=True, new=False, read_messages=self.store.get_messages_by_key,
            read_reactions=lambda keys: self.store.reaction_counts_by_key(keys, viewer.id))

    def _bundle(self, messages: list[Message], viewer: UserSnapshot, guild_id: int | None, *, with_references: bool,
                new: bool, read_messages: Callable[[list[tuple[int, int]]], dict[int, Message]],
                read_reactions: Callable[[list[tuple[int, int]]], dict[int, list[ReactionCount]]]) -> MessageBundle:
        referenced: dict[int, Message | None] = {}
        references = {(m.channel_id, m.reference_message_id) for m in messages
                      if m.type == TYPE_REPLY and m.reference_message_id is not None}
        if with_references and references:
            found = read_messages(sorted(references))
            referenced = {ref_id: found.get(ref_id) for _, ref_id in references}
        everything = messages + [m for m in referenced.values() if m is not None]
        reacted = [(m.channel_id, m.id) for m in (everything[len(messages):] if new else everything)]
        reactions = read_reactions(reacted) if reacted else {}
        users = self.users({m.author_id for m in everything} | {u for m in everything for u in m.mentions})
        return MessageBundle(messages=messages, users=users, reactions=reactions, referenced=referenced,
                             guild_id=guild_id, links=self.links)

    def users(self, user_ids: set[int]) -> dict[int, UserSnapshot]:
        found = {u: kept for u in user_ids if (kept := self.reads.user(u)) is not None}
        missing = user_ids - found.keys()
        if missing:
            begin_read_only(self.session)
            loaded = [UserSnapshot.of(u) for u in self.session.scalars(select(User).where(User.id.in_(missing)))]
            self.session.commit()
            for user in loaded:
                found[user.id] = user
                self.reads.keep_user(user)
        return found


class MessageHistory:
    """Reading a channel's history: a page in any cursor mode, answered from the read path's kept pages when it
    holds one. A page read needs nothing of the write path, which is not built for it: building the write side's
    services cost about a tenth of answering a kept page."""

    def __init__(self, lookup: MessageLookup):
        self.lookup = lookup
        self.store = lookup.store

    def list_messages(self, user: UserSnapshot, channel_id: int, *, before: int | None, after: int | None,
                      around: int | None, limit: int) -> MessageBundle:
        access = self.lookup.channel_access(user, channel_id)
        if not access.has(Permission.READ_MESSAGE_HISTORY):
            return MessageBundle(messages=[], guild_id=access.channel.guild_id, links=self.lookup.links)
        key = (before, after, around, limit)
        kept = self.lookup.reads.page(channel_id, key)
        if kept is not None:
            return self._for_viewer(kept, channel_id, user)
        if around is not None:
            messages = self._around(channel_id, around, limit)
        else:
            messages = self.store.list_messages(channel_id, before=before, after=after, limit=limit)
        bundle = self.lookup.bundle(messages, access, user)
        self.lookup.reads.keep_page(channel_id, key, _kept_page(bundle))
        return bundle

    def _for_viewer(self, kept: KeptPage, channel_id: int, viewer: UserSnapshot) -> MessageBundle:
        page = kept.bundle
        if not kept.has_reactions and not kept.has_attachments:
            return page
        reactions = page.reactions
        if kept.has_reactions:
            ids = [m.id for m in page.messages] + [m.id for m in page.referenced.values() if m is not None]
            reactions = self.store.reaction_counts(channel_id, ids, viewer.id)
        return MessageBundle(messages=page.messages, users=page.users, referenced=page.referenced,
                             reactions=reactions, guild_id=page.guild_id, links=self.lookup.links)

    def _around(self, channel_id: int, around: int, limit: int) -> list[Message]:
        """``limit // 2`` messages on each side of ``around``, plus ``around`` itself when it exists."""
        half = limit // 2
        newer = self.store.list_messages(channel_id, after=around, limit=half) if half else []
        # ``before`` is exclusive; past the largest snowflake (which SQLite cannot bind) there is no bound.
        at_or_before = around + 1 if around < MAX_SNOWFLAKE else None
        older = self.store.list_messages(channel_id, before=at_or_before, limit=half + 1)
        if older and older[0].id != around:
            older = older[:half]
        return newer + older


class MessageService:
    """Reading a message, sending, editing and deleting messages (history: :class:`MessageHistory`)."""

    def __init__(self, lookup: MessageLookup, ids, writes: ChannelWrites, dispatch: Dispatch, *,
                 nonce_ttl_seconds: int = 600, attachments: AttachmentService | None = None, threads=None):
        #: The ThreadService whose hooks run around writes to threads (archive state, membership, counters).
        self.threads = threads
        self.attachments = attachments or AttachmentService(None, ids)
        self.lookup = lookup
        self.session = lookup.session
        self.store = lookup.store
        self.ids = ids
        self.writes = writes
        self.dispatch = dispatch
        self.nonce_ttl_seconds = nonce_ttl_seconds

    # -- reading --------------------------------------------------------------------------------------------

    def get_message(self, user: UserSnapshot, channel_id: int, message_id: int) -> MessageBundle:
        access = self.lookup.readable_access(user, channel_id)
        return self.lookup.bundle([self.lookup.existing_message(access, message_id)], access, user)

    # -- sending --------------------------------------------------------------------------------------------

    def create_message(self, user: UserSnapshot, channel_id: int, body: dict[str, Any],
                       uploads: Sequence[Upload] = (), *, message_id: int | None = None,
                       starter: bool = False) -> MessageBundle:
        """Send a message. ``message_id`` and ``starter``: the first message of a forum post, whose id is the
        thread's and which the post's creator may send with SEND_MESSAGES of the forum (checked there)."""
        return self._create(self.lookup.channel_access(user, channel_id), user, body, uploads,
                            message_id=message_id, starter=starter)

    def create_webhook_message(self, webhook: UserSnapshot, channel: ChannelRef, body: dict[str, Any],
                               uploads: Sequence[Upload] = (), *, message_id: int | None = None,
                               starter: bool = False) -> MessageBundle:
        """A webhook's execution (the caller checked its token): a message of ``webhook`` (its id and the name
        it sends under, the body's ``username`` or its own) with WEBHOOK_PERMISSIONS in its channel, or in a
        thread of it. ``message_id`` and ``starter``: the first message of the webhook's forum post."""
        access = ChannelAccess(channel=channel, guild=None, permissions=WEBHOOK_PERMISSIONS)
        return self._create(access, webhook, body, uploads, message_id=message_id, starter=starter, sender={
            "webhook_id": webhook.id, "webhook_username": webhook.username,
            "webhook_avatar_url": body.get("avatar_url")})

    def _create(self, access: ChannelAccess, user: UserSnapshot, body: dict[str, Any], uploads: Sequence[Upload], *,
                message_id: int | None = None, starter: bool = False,
                sender: dict[str, Any] | None = None) -> MessageBundle:
        channel_id = access.channel.id
        if access.channel.type not in TEXT_CHANNEL_TYPES:
            raise NonTextChannel()
        if not starter:
            access.require(Permission.SEND_MESSAGES)
        content = body.get("content") or ""
        embeds = self._embeds(body)
        components = body.get("components") or []
        reference = body.get("message_reference")
        _, new_files = self.attachments.plan(body.get("attachments"), list(uploads), [])
        if new_files:
            access.require(Permission.ATTACH_FILES)
        if not content.strip() and not embeds and not components and not new_files:
            raise EmptyMessage()

        # Validate everything before claiming the nonce: a rejected request must leave it free for the
        # corrected retry, which would otherwise be answered with a message that was never created.
        replied = self._replied_message(access, reference) if reference is not None else None
        mentions, mention_roles, mention_everyone = self._mentions(
            access, content, body.get("allowed_mentions"), replied)

        in_thread = self.threads is not None and access.channel.type in THREAD_TYPES
        if in_thread:
            # A webhook sends into a thread without becoming one of its members.
            self.threads.before_send(user, access, starter=starter, joins=sender is None)

        nonce = body.get("nonce")
        message_id = message_id if message_id is not None else self.ids.next_id()
        if nonce is not None and body.get("enforce_nonce"):
            holder = self.store.claim_nonce(channel_id, user.id, str(nonce), message_id, self.nonce_ttl_seconds)
            if holder is not None:
                # A retry of a send that already happened: answer with the original, create nothing.
                original = self.lookup.existing_message(access, holder)
                bundle = self.lookup.bundle([original], access, user)
                bundle.nonce = nonce
                return bundle

        records = self.attachments.store(channel_id, new_files)
        message = Message(
            id=message_id, channel_id=channel_id, author_id=user.id, content=content,
            type=TYPE_REPLY if replied else TYPE_DEFAULT,
            flags=(body.get("flags") or 0) & SETTABLE_FLAGS_ON_CREATE,
            tts=bool(body.get("tts")) and access.has(Permission.SEND_TTS_MESSAGES),
            mention_everyone=mention_everyone, mentions=mentions, mention_roles=mention_roles,
            embeds_json=orjson.dumps(embeds).decode() if embeds else None,
            nonce=str(nonce) if nonce is not None else None,
            reference_message_id=replied.id if replied else None,
            reference_channel_id=channel_id if replied else None,
            reference_guild_id=access.channel.guild_id if replied else None,
            attachments_json=orjson.dumps(records).decode() if records else None,
            components_json=orjson.dumps(components).decode() if components else None,
            guild_id=access.channel.guild_id,
            **(sender or {}),
        )
        bundle = self.lookup.bundle([message], access, user, new=True)
        bundle.nonce = nonce

        def created(_):
            wire = message_json(message, bundle)
            if nonce is not None:
                wire["nonce"] = nonce
            return [self.dispatch.message_created(wire, guild_id=access.channel.guild_id, channel_id=channel_id)]

        # A failed write may still have landed (a lost commit acknowledgement): its files stay, as orphans at
        # worst, so that no message can point at nothing.
        self.writes.apply(channel_id, lambda: self.store.create_message(message), created=message.id,
                          events=created, check={"message": [channel_id, message.id], "exists": True})
        if in_thread:
            self.threads.after_send(channel_id, starter=starter)
        return bundle

    def _replied_message(self, access: ChannelAccess, reference: dict[str, Any]) -> Message | None:
        """The message a reply refers to, or None when it may be sent as a plain message."""
        if reference.get("type") == MessageReferenceType.FORWARD:
            raise InvalidForm.field("message_reference", "MESSAGE_REFERENCE_TYPE_UNSUPPORTED",
                                    "Forwarding messages is not supported")
        if reference.get("message_id") is None:
            raise InvalidForm.field(("message_reference", "message_id"), "BASE_TYPE_REQUIRED",
                                    "This field is required")
        if reference.get("channel_id") not in (None, access.channel.id):
            raise InvalidForm.field("message_reference", "REPLIES_CANNOT_REFERENCE_OTHER_CHANNEL",
                                    "Cannot reply to a message in a different channel")
        if not access.has(Permission.READ_MESSAGE_HISTORY):
            raise CannotReplyWithoutHistory()
        replied = self.store.get_message(access.channel.id, reference["message_id"])
        if replied is None:
            if reference.get("fail_if_not_exists", True) is False:
                return None
            raise InvalidForm.field("message_reference", "REPLIES_UNKNOWN_MESSAGE", "Unknown message")
        if replied.type not in REPLYABLE_TYPES:
            raise InvalidForm.field("message_reference", "REPLIES_CANNOT_REFERENCE_SYSTEM_MESSAGE",
                                    "Cannot reply to a system message")
        return replied

    def _mentions(self, access: ChannelAccess, content: str, allowed: dict | None,
                  replied: Message | None) -> tuple[tuple[int, ...], tuple[int, ...], bool]:
        """Who the content pings, after ``allowed_mentions`` and the author's permissions, as Discord decides."""
        if allowed is None:
            parse, allowed_users, allowed_roles, replied_user = {"users", "roles", "everyone"}, None, None, True
        else:
            parse = set(allowed.get("parse") or ())
            allowed_users, allowed_roles = allowed.get("users"), allowed.get("roles")
            replied_user = bool(allowed.get("replied_user"))
            if "users" in parse and allowed_users:
                raise InvalidForm.field(("allowed_mentions", "parse"), "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                                        'parse:["users"] and users: [ids...] are mutually exclusive.')
            if "roles" in parse and allowed_roles:
                raise InvalidForm.field(("allowed_mentions", "parse"), "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                                        'parse:["roles"] and roles: [ids...] are mutually exclusive.')
        user_ids = _mentioned_ids(_USER_MENTION, content)
        if "users" not in parse:
            user_ids = [u for u in user_ids if allowed_users and u in allowed_users]
        if replied is not None and replied_user and replied.author_id not in user_ids:
            user_ids.append(replied.author_id)
        if user_ids:
            existing = set(self.session.scalars(select(User.id).where(User.id.in_(user_ids))))
            user_ids = [u for u in user_ids if u in existing]

        role_ids = _mentioned_ids(_ROLE_MENTION, content)
        if "roles" not in parse:
            role_ids = [r for r in role_ids if allowed_roles and r in allowed_roles]
        if role_ids:
            roles = self.session.execute(select(Role.id, Role.mentionable).where(
                Role.id.in_(role_ids), Role.guild_id == access.channel.guild_id)).all()
            can_ping_all = access.has(Permission.MENTION_EVERYONE)
            pingable = {role_id for role_id, mentionable in roles if mentionable or can_ping_all}
            role_ids = [r for r in role_ids if r in pingable]

        everyone = ("everyone" in parse and access.has(Permission.MENTION_EVERYONE)
                    and _EVERYONE_MENTION.search(content) is not None)
        self.session.commit()
        return tuple(user_ids), tuple(role_ids), everyone

    @staticmethod
    def _embeds(body: dict[str, Any]) -> list[dict[str, Any]]:
        """The embeds as the request layer validated them (app/api/rich_content.py): Discord's field types,
        lengths, URL schemes and the 6000-character total, ``embed`` folded into ``embeds``."""
        return list(body.get("embeds") or [])

    # -- editing and deleting -------------------------------------------------------------------------------

    def edit_message(self, user: UserSnapshot, channel_id: int, message_id: int, body: dict[str, Any],
                     uploads: Sequence[Upload] = ()) -> MessageBundle:
        access = self.lookup.channel_access(user, channel_id)
        return self._edit(access, user, self.lookup.message_to_change(access, user, message_id), body, uploads)

    # -- a webhook's own messages (the caller checked its token) ---------------------------------------------

    def webhook_message(self, webhook: UserSnapshot, channel: ChannelRef, message_id: int) -> MessageBundle:
        access, message = self._webhook_message(webhook, channel, message_id)
        return self.lookup.bundle([message], access, webhook)

    def edit_webhook_message(self, webhook: UserSnapshot, channel: ChannelRef, message_id: int,
                             body: dict[str, Any], uploads: Sequence[Upload] = ()) -> MessageBundle:
        access, message = self._webhook_message(webhook, channel, message_id)
        return self._edit(access, webhook, message, body, uploads)

    def delete_webhook_message(self, webhook: UserSnapshot, channel: ChannelRef, message_id: int) -> None:
        access, message = self._webhook_message(webhook, channel, message_id)
        self._delete(access, webhook, message)

    def _webhook_message(self, webhook: UserSnapshot, channel: ChannelRef,
                         message_id: int) -> tuple[ChannelAccess, Message]:
        """A message the webhook sent, in its channel; any other is Unknown Message, as a missing one."""
        access = ChannelAccess(channel=channel, guild=None, permissions=WEBHOOK_PERMISSIONS)
        message = self.store.get_message(channel.id, message_id)
        if message is None or message.webhook_id != webhook.id:
            raise UnknownMessage()
        return access, message

    def _before_change(self, access: ChannelAccess) -> None:
        """A thread's messages are not edited nor deleted while it is archived (ThreadService.before_change)."""
        if self.threads is not None and access.channel.type in THREAD_TYPES:
            self.threads.before_change(access)

    def _edit(self, access: ChannelAccess, user: UserSnapshot, message: Message, body: dict[str, Any],
              uploads: Sequence[Upload]) -> MessageBundle:
        channel_id, message_id = access.channel.id, message.id
        changes: dict[str, Any] = {}
        edits_files = body.get("attachments") is not None or bool(uploads)
        edits_content = edits_files or any(body.get(k) is not None for k in ("content", "embeds", "components"))
        if message.author_id != user.id:
            if edits_content:
                raise CannotEditOthersMessage()
            access.require(Permission.MANAGE_MESSAGES)
        self._before_change(access)
        # The replied-to message: its author may be pinged again, and the edited message's wire form shows it.
        replied = (self.store.get_message(channel_id, message.reference_message_id)
                   if message.reference_message_id is not None else None)
        if body.get("flags") is not None:
            # Only SUPPRESS_EMBEDS can be changed; other bits are ignored without error, as on Discord.
            changes["flags"] = (message.flags & ~SUPPRESS_EMBEDS) | (body["flags"] & SUPPRESS_EMBEDS)
        existing_files = attachment_records(message)
        kept_files, new_files, dropped_files = existing_files, [], []
        if edits_content:
            content = body["content"] if body.get("content") is not None else message.content
            embeds = self._embeds(body) if body.get("embeds") is not None else None
            if embeds is not None:
                changes["embeds_json"] = orjson.dumps(embeds).decode() if embeds else None
            has_embeds = bool(embeds) if embeds is not None else message.embeds_json is not None
            if body.get("components") is not None:
                changes["components_json"] = orjson.dumps(body["components"]).decode() if body["components"] else None
            has_components = changes.get("components_json", message.components_json) is not None
            if edits_files:
                kept_files, new_files = self.attachments.plan(body.get("attachments"), list(uploads), existing_files)
                kept_ids = {record["id"] for record in kept_files}
                dropped_files = [record for record in existing_files if record["id"] not in kept_ids]
                if new_files:
                    access.require(Permission.ATTACH_FILES)
            if not content.strip() and not has_embeds and not has_components and not kept_files and not new_files:
                raise EmptyMessage()
            changes["content"] = content
            mentions, mention_roles, everyone = self._mentions(access, content, body.get("allowed_mentions"),
                                                               replied)
            changes.update(mentions=mentions, mention_roles=mention_roles, mention_everyone=everyone,
                           edited_at=datetime.now(timezone.utc))
        if edits_files:
            records = kept_files + self.attachments.store(channel_id, new_files)
            changes["attachments_json"] = orjson.dumps(records).decode() if records else None
        if changes:
            expected = message.replace(**changes)
            updated = self.writes.apply(
                channel_id, lambda: self.store.update_message(channel_id, message_id, changes),
                events=self._updated_events(access, message, changes, replied),
                expected=expected,
                check={"message": [channel_id, message_id], "exists": True, "content": expected.content,
                       "flags": expected.flags,
                       "edited_at": expected.edited_at.isoformat() if expected.edited_at is not None else None})
        else:
            updated = message
        if updated is None:
            raise UnknownMessage()
        # Only once no record names them any more.
        self.attachments.delete(channel_id, dropped_files)
        return self.lookup.bundle([updated], access, user)

    def _updated_events(self, access: ChannelAccess, message: Message, changes: dict[str, Any],
                        replied: Message | None):
        """The MESSAGE_UPDATE of an edit, from the message the store returns. What its wire form needs is read
        now, before the write: inside the write's transaction nothing else may be read from the database."""
        mentioned = set(changes.get("mentions", message.mentions))
        users = self.lookup.users({message.author_id} | mentioned | ({replied.author_id} if replied else set()))
        referenced = {message.reference_message_id: replied} if message.reference_message_id is not None else {}

        def updated(result: Message | None):
            if result is None:
                return []
            bundle = MessageBundle(messages=[result], users=users, referenced=referenced,
                                   guild_id=access.channel.guild_id, links=self.lookup.links)
            return [self.dispatch.message_updated(message_json(result, bundle), guild_id=access.channel.guild_id,
                                                  channel_id=access.channel.id)]
        return updated

    def mark_thread_started(self, user: UserSnapshot, channel_id: int, message: Message, flag: int) -> None:
        """Set ``flag`` (HAS_THREAD) on the message a thread was started from, with its MESSAGE_UPDATE, as Discord
        does."""
        if message.flags & flag:
            return
        access = self.lookup.channel_access(user, channel_id)
        replied = (self.store.get_message(channel_id, message.reference_message_id)
                   if message.reference_message_id is not None else None)
        changes = {"flags": message.flags | flag}
        expected = message.replace(**changes)
        self.writes.apply(channel_id, lambda: self.store.update_message(channel_id, message.id, changes),
                          events=self._updated_events(access, message, changes, replied), expected=expected,
                          check={"message": [channel_id, message.id], "exists": True, "flags": expected.flags})

    def delete_message(self, user: UserSnapshot, channel_id: int, message_id: int, *,
                       reason: str | None = None) -> None:
        access = self.lookup.channel_access(user, channel_id)
        self._delete(access, user, self.lookup.message_to_change(access, user, message_id), reason=reason)

    def _delete(self, access: ChannelAccess, user: UserSnapshot, message: Message, *,
                reason: str | None = None) -> None:
        channel_id, message_id = access.channel.id, message.id
        if message.type not in DELETABLE_TYPES:
            raise SystemMessageAction()
        if message.author_id != user.id:
            access.require(Permission.MANAGE_MESSAGES)
        self._before_change(access)
        event = self.dispatch.message_deleted(message_id, guild_id=access.channel.guild_id, channel_id=channel_id)
        self.writes.apply(channel_id, lambda: self.store.delete_messages(channel_id, [message_id]),
                          deleted={message_id}, events=lambda _: [event],
                          check={"message": [channel_id, message_id], "exists": False})
        if message.author_id != user.id and access.channel.guild_id is not None:
            # A moderator's delete of another's message is audited; one's own is not, as on Discord.
            record_audit_after_write(self.session, self.dispatch, self.writes.records_events,
                                     guild_id=access.channel.guild_id, user_id=user.id,
                                     action_type=AuditAction.MESSAGE_DELETE, target_id=message.author_id,
                                     options={"channel_id": str(channel_id), "count": "1"}, reason=reason)
        if self.threads is not None and access.channel.type in THREAD_TYPES:
            self.threads.after_delete(channel_id, [message_id])
        # The files go once the message that names them is gone.
        self.attachments.delete(channel_id, attachment_records(message))

    def bulk_delete(self, user: UserSnapshot, channel_id: int, message_ids: list[int], *,
                    reason: str | None = None) -> None:
        access = self.lookup.channel_access(user, channel_id)
        access.require(Permission.MANAGE_MESSAGES)
        if not 2 <= len(message_ids) <= 100:
            raise BulkDeleteCount()
        if len(set(message_ids)) != len(message_ids):
            raise InvalidForm.field("messages", "BASE_TYPE_UNIQUE", "Message ids must be unique.")
        oldest_allowed = datetime.now(timezone.utc) - BULK_DELETE_MAX_AGE
        if any(snowflake_time(m) < oldest_allowed for m in message_ids):
            raise BulkDeleteTooOld()
        # Unknown ids (or ids of other channels) count toward the limits above but delete nothing, so the
        # event names only the messages that were in this channel.
        self._before_change(access)
        found = self.store.get_messages(channel_id, message_ids)
        existing = sorted(found)
        if not existing:
            return
        event = self.dispatch.messages_deleted(existing, guild_id=access.channel.guild_id, channel_id=channel_id)
        self.writes.apply(channel_id, lambda: self.store.delete_messages(channel_id, existing), deleted=set(existing),
                          events=lambda _: [event], check={"messages": [channel_id, existing], "exists": False})
        if access.channel.guild_id is not None:
            record_audit_after_write(self.session, self.dispatch, self.writes.records_events,
                                     guild_id=access.channel.guild_id, user_id=user.id,
                                     action_type=AuditAction.MESSAGE_BULK_DELETE, target_id=channel_id,
                                     options={"count": str(len(existing))}, reason=reason)
        if self.threads is not None and access.channel.type in THREAD_TYPES:
            self.threads.after_delete(channel_id, existing)
        self.attachments.delete(channel_id, [record for message in found.values()
                                             for record in attachment_records(message)])
