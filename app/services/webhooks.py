"""Incoming webhooks (https://discord.com/developers/docs/resources/webhook): managing them, with MANAGE_WEBHOOKS,
and executing them, with their token.

A webhook belongs to a guild text, announcement, forum or media channel, never to a thread: it posts into its
channel's threads with ``thread_id``, and starts a forum or media post with ``thread_name``. Its token is its
only credential: kept as a SHA-256 digest (app.auth.tokens), compared in constant time, shown when the webhook
is created (and echoed by the token routes to the caller that sent it). A deleted webhook is gone: its token
then answers Unknown Webhook. Every change to a channel's webhooks records WEBHOOKS_UPDATE in the same
transaction. Messages a webhook sends go through
MessageService, as a user's do, with the webhook as author.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.auth.permissions import Permission
from app.auth.tokens import new_webhook_token, webhook_token_matches
from app.domain import POST_CHANNEL_TYPES, THREAD_TYPES, ChannelRef, UserSnapshot
from app.errors import (
    EmptyMessage,
    InvalidForm,
    InvalidWebhookToken,
    MaxWebhooks,
    NonTextChannel,
    UnknownWebhook,
    WebhookForumNeedsThread,
    WebhookThreadNameAndId,
)
from app.services.access import AccessService, ChannelAccess
from app.services.attachments import Upload
from app.services.audit import AuditAction, change, record_audit
from app.services.dispatch import SessionEvents
from app.services.messages import TEXT_CHANNEL_TYPES, MessageBundle, MessageService
from app.services.threads import ThreadService
from models import Channel, User, Webhook

INCOMING = 1
#: Discord's limit of webhooks per channel.
MAX_WEBHOOKS_PER_CHANNEL = 15
#: The channels a webhook may belong to.
WEBHOOK_CHANNEL_TYPES = (TEXT_CHANNEL_TYPES | POST_CHANNEL_TYPES) - THREAD_TYPES
#: Words a webhook's name (or a message's ``username``) may not contain, as on Discord (any case).
FORBIDDEN_NAME_WORDS = ("clyde", "discord")


@dataclass(frozen=True)
class WebhookView:
    """A webhook with what its wire object shows: its creator (None once gone, or for the token routes, which
    show no user) and its token: when just created, and on the token routes, whose caller sent it (discord.py
    builds a new webhook from their answer and sends with the token it finds there). Only its hash is kept."""

    webhook: Webhook
    creator: User | None = None
    token: str | None = None


def check_name(name: str, field: str) -> None:
    """400 naming ``field`` when ``name`` contains a word Discord reserves."""
    lowered = name.lower()
    for word in FORBIDDEN_NAME_WORDS:
        if word in lowered:
            raise InvalidForm.field(field, "USERNAME_INVALID_CONTAINS", f'Username cannot contain "{word}"')


class WebhookService:
    def __init__(self, session: Session, ids, *, events: SessionEvents, messages: MessageService | None = None,
                 threads: ThreadService | None = None):
        self.session = session
        self.ids = ids
        self.events = events
        self.messages = messages
        #: Finds the threads executions go into (``thread_id``) and starts the posts they make (``thread_name``).
        self.threads = threads
        self.access = AccessService(session)

    # -- management (MANAGE_WEBHOOKS) -----------------------------------------------------------------------

    def _managed_channel(self, user: UserSnapshot, channel_id: int) -> ChannelAccess:
        access = self.access.channel_access(channel_id, user)
        # A thread has no webhooks of its own: its parent's post into it with ``thread_id``.
        if access.guild is None or access.channel.type not in WEBHOOK_CHANNEL_TYPES:
            raise NonTextChannel()
        access.require(Permission.MANAGE_WEBHOOKS)
        return access

    def _managed(self, user: UserSnapshot, webhook_id: int) -> Webhook:
        webhook = self.session.get(Webhook, webhook_id)
        if webhook is None:
            raise UnknownWebhook()
        self._managed_channel(user, webhook.channel_id)
        return webhook

    def _view(self, webhook: Webhook) -> WebhookView:
        creator = self.session.get(User, webhook.user_id) if webhook.user_id is not None else None
        return WebhookView(webhook, creator)

    def _announce(self, webhook: Webhook, *channel_ids: int) -> None:
        self.events.record(self.session, lambda dispatch: [
            dispatch.webhooks_updated(guild_id=webhook.guild_id, channel_id=channel_id)
            for channel_id in dict.fromkeys(channel_ids)])

    def create(self, user: UserSnapshot, channel_id: int, fields: dict[str, Any], *,
               reason: str | None = None) -> WebhookView:
        access = self._managed_channel(user, channel_id)
        check_name(fields["name"], "name")
        count = self.session.scalar(select(func.count()).select_from(Webhook).where(Webhook.channel_id == channel_id))
        if count >= MAX_WEBHOOKS_PER_CHANNEL:
            raise MaxWebhooks(MAX_WEBHOOKS_PER_CHANNEL)
        token, digest = new_webhook_token()
        webhook = Webhook(id=self.ids.next_id(), type=INCOMING, guild_id=access.channel.guild_id,
                          channel_id=channel_id, user_id=user.id, name=fields["name"], token_sha256=digest,
                          created_at=datetime.now(timezone.utc))
        self.session.add(webhook)
        self._announce(webhook, channel_id)
        self._audit(user, webhook, AuditAction.WEBHOOK_CREATE,
                    [change("name", None, webhook.name), change("channel_id", None, str(channel_id)),
                     change("type", None, INCOMING)], reason)
        self.session.commit()
        return WebhookView(webhook, self.session.get(User, user.id), token)

    def channel_webhooks(self, user: UserSnapshot, channel_id: int) -> list[WebhookView]:
        self._managed_channel(user, channel_id)
        found = self.session.scalars(select(Webhook).where(Webhook.channel_id == channel_id).order_by(Webhook.id))
        return [self._view(webhook) for webhook in found]

    def guild_webhooks(self, user: UserSnapshot, guild_id: int) -> list[WebhookView]:
        self.access.guild_access(guild_id, user).require(Permission.MANAGE_WEBHOOKS)
        found = self.session.scalars(select(Webhook).where(Webhook.guild_id == guild_id).order_by(Webhook.id))
        return [self._view(webhook) for webhook in found]

    def get(self, user: UserSnapshot, webhook_id: int) -> WebhookView:
        return self._view(self._managed(user, webhook_id))

    def edit(self, user: UserSnapshot, webhook_id: int, fields: dict[str, Any], *,
             reason: str | None = None) -> WebhookView:
        webhook = self._managed(user, webhook_id)
        before, old_name = webhook.channel_id, webhook.name
        target = fields.get("channel_id")
        if target is not None and target != webhook.channel_id:
            channel = self.session.get(Channel, target)
            if channel is None or channel.guild_id != webhook.guild_id:
                raise InvalidForm.field("channel_id", "CHANNEL_NOT_IN_GUILD", "Channel is not in this guild.")
            # Moving it is managing the target channel's webhooks too.
            self._managed_channel(user, target)
            webhook.channel_id = target
        self._rename(webhook, fields)
        self._announce(webhook, before, webhook.channel_id)
        changes = [item for item in (change("name", old_name, webhook.name) if old_name != webhook.name else None,
                                     change("channel_id", str(before), str(webhook.channel_id))
                                     if before != webhook.channel_id else None) if item is not None]
        if changes:
            self._audit(user, webhook, AuditAction.WEBHOOK_UPDATE, changes, reason)
        self.session.commit()
        return self._view(webhook)

    def delete(self, user: UserSnapshot, webhook_id: int, *, reason: str | None = None) -> None:
        webhook = self._managed(user, webhook_id)
        self._audit(user, webhook, AuditAction.WEBHOOK_DELETE,
                    [change("name", webhook.name, None), change("channel_id", str(webhook.channel_id), None),
                     change("type", INCOMING, None)], reason)
        self._remove(webhook)

    def _audit(self, user: UserSnapshot, webhook: Webhook, action: AuditAction, changes: list[dict],
               reason: str | None) -> None:
        """A management action's audit entry; the token routes act for no user and are not audited."""
        record_audit(self.session, self.ids, self.events, guild_id=webhook.guild_id, user_id=user.id,
                     action_type=action, target_id=webhook.id, changes=changes, reason=reason)

    def _rename(self, webhook: Webhook, fields: dict[str, Any]) -> None:
        if fields.get("name") is not None:
            check_name(fields["name"], "name")
            webhook.name = fields["name"]

    def _remove(self, webhook: Webhook) -> None:
        self.session.delete(webhook)
        self._announce(webhook, webhook.channel_id)
        self.session.commit()

    # -- with the token ------------------------------------------------------------------------------------

    def by_token(self, webhook_id: int, token: str) -> Webhook:
        """The webhook the token opens: Unknown Webhook when there is none, Invalid Webhook Token when the token
        is not its own."""
        webhook = self.session.get(Webhook, webhook_id)
        if webhook is None:
            raise UnknownWebhook()
        if not webhook_token_matches(webhook.token_sha256, token):
            raise InvalidWebhookToken()
        return webhook

    def get_with_token(self, webhook_id: int, token: str) -> WebhookView:
        return WebhookView(self.by_token(webhook_id, token), token=token)

    def edit_with_token(self, webhook_id: int, token: str, fields: dict[str, Any]) -> WebhookView:
        webhook = self.by_token(webhook_id, token)
        self._rename(webhook, fields)
        self._announce(webhook, webhook.channel_id)
        self.session.commit()
        return WebhookView(webhook, token=token)

    def delete_with_token(self, webhook_id: int, token: str) -> None:
        self._remove(self.by_token(webhook_id, token))

    # -- its messages --------------------------------------------------------------------------------------

    def _sender(self, webhook_id: int, token: str, username: str | None = None,
                thread_id: int | None = None) -> tuple[UserSnapshot, ChannelRef]:
        """The webhook as the author of its messages, and its channel (or the thread ``thread_id`` of it); the
        session's transaction is ended, as the message store may need the connection."""
        webhook = self.by_token(webhook_id, token)
        if thread_id is not None:
            channel = self.threads.webhook_thread(webhook.channel_id, thread_id)
        else:
            channel = ChannelRef.of(self.session.get(Channel, webhook.channel_id))
        sender = UserSnapshot(id=webhook.id, username=username or webhook.name, global_name=None, avatar=None,
                              bot=True)
        self.session.commit()
        return sender, channel

    def execute(self, webhook_id: int, token: str, body: dict[str, Any], uploads: Sequence[Upload] = (), *,
                thread_id: int | None = None) -> MessageBundle:
        """Send the webhook's message: into its channel, into the thread ``thread_id`` of it, or as the first
        message of a new forum or media post named by the body's ``thread_name``."""
        body = dict(body)
        thread_name = body.pop("thread_name", None)
        if thread_name is not None and thread_id is not None:
            raise WebhookThreadNameAndId()
        if body.get("username") is not None:
            check_name(body["username"], "username")
        sender, channel = self._sender(webhook_id, token, body.get("username"), thread_id)
        if thread_name is not None:
            # An empty message is refused before a post exists, as a member's post is.
            if not (body.get("content") or "").strip() and not body.get("embeds") and not body.get(
                    "components") and not uploads:
                raise EmptyMessage()
            return self.threads.create_webhook_post(
                sender, channel.id, thread_name,
                lambda thread: self.messages.create_webhook_message(sender, thread, body, uploads,
                                                                    message_id=thread.id, starter=True))
        if channel.type in POST_CHANNEL_TYPES:
            raise WebhookForumNeedsThread()
        return self.messages.create_webhook_message(sender, channel, body, uploads)

    def get_message(self, webhook_id: int, token: str, message_id: int, *,
                    thread_id: int | None = None) -> MessageBundle:
        sender, channel = self._sender(webhook_id, token, thread_id=thread_id)
        return self.messages.webhook_message(sender, channel, message_id)

    def edit_message(self, webhook_id: int, token: str, message_id: int, body: dict[str, Any],
                     uploads: Sequence[Upload] = (), *, thread_id: int | None = None) -> MessageBundle:
        sender, channel = self._sender(webhook_id, token, thread_id=thread_id)
        return self.messages.edit_webhook_message(sender, channel, message_id, body, uploads)

    def delete_message(self, webhook_id: int, token: str, message_id: int, *, thread_id: int | None = None) -> None:
        sender, channel = self._sender(webhook_id, token, thread_id=thread_id)
        self.messages.delete_webhook_message(sender, channel, message_id)
