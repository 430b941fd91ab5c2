"""The guild audit log: entries recorded with the writes they describe, and the page GET .../audit-logs serves.

Other services call :func:`record_audit` once per moderation or management action, inside the transaction of the
write it describes, so the entry (and its GUILD_AUDIT_LOG_ENTRY_CREATE event) commit with the write or not at all.
"""
from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.services.dispatch import SessionEvents
from models import AuditLogEntry, Channel, Thread, Webhook

#: The longest reason Discord keeps (X-Audit-Log-Reason, and the ban's ``reason``).
MAX_REASON_LENGTH = 512


class AuditAction(enum.IntEnum):
    """Discord's audit log event types that this service records."""

    GUILD_UPDATE = 1
    CHANNEL_CREATE = 10
    CHANNEL_UPDATE = 11
    CHANNEL_DELETE = 12
    CHANNEL_OVERWRITE_CREATE = 13
    CHANNEL_OVERWRITE_UPDATE = 14
    CHANNEL_OVERWRITE_DELETE = 15
    MEMBER_KICK = 20
    MEMBER_BAN_ADD = 22
    MEMBER_BAN_REMOVE = 23
    MEMBER_UPDATE = 24
    MEMBER_ROLE_UPDATE = 25
    ROLE_CREATE = 30
    ROLE_UPDATE = 31
    ROLE_DELETE = 32
    WEBHOOK_CREATE = 50
    WEBHOOK_UPDATE = 51
    WEBHOOK_DELETE = 52
    MESSAGE_DELETE = 72
    MESSAGE_BULK_DELETE = 73
    MESSAGE_PIN = 74
    MESSAGE_UNPIN = 75
    THREAD_CREATE = 110
    THREAD_UPDATE = 111
    THREAD_DELETE = 112


def change(key: str, old: Any, new: Any) -> dict[str, Any]:
    """One ``changes`` item; a side that does not exist (a creation's old, a deletion's new) is left out."""
    item: dict[str, Any] = {"key": key}
    if old is not None:
        item["old_value"] = old
    if new is not None:
        item["new_value"] = new
    return item


def diff(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``changes`` from ``before`` to ``after`` (either may be empty: a creation or a deletion): the keys
    whose value differs, ``after``'s first, in their order."""
    keys = list(after) + [key for key in before if key not in after]
    return [change(key, before.get(key), after.get(key)) for key in keys if before.get(key) != after.get(key)]


def record_audit(session: Session, ids, events: SessionEvents | None, *, guild_id: int, user_id: int,
                 action_type: int, target_id: int | None, changes: Iterable[dict] = (),
                 options: dict | None = None, reason: str | None = None) -> AuditLogEntry:
    """Add an audit log entry to ``session``'s open transaction (the caller commits it with its write).

    ``session`` is the SQLAlchemy ORM session of the write; ``ids`` the process's snowflake generator
    (``resources().ids``, which the services hold as ``self.ids``), for the entry's id; ``events`` the services'
    :class:`~app.services.dispatch.SessionEvents` (None, or one built without a dispatch, records no event):
    GUILD_AUDIT_LOG_ENTRY_CREATE goes to the outbox in the same transaction. ``user_id`` is who acted,
    ``target_id`` what was acted on (a user, role, channel, message... as Discord's table of action types says),
    ``changes`` items ``{key, old_value, new_value}`` (see :func:`change` and :func:`diff`), ``options`` Discord's
    optional entry info with ids as strings, ``reason`` the ``X-Audit-Log-Reason`` the API layer parsed (at most
    512 characters; longer is cut). Returns the entry, not yet flushed.
    """
    entry = AuditLogEntry(
        guild_id=guild_id, id=ids.next_id(), user_id=user_id, action_type=int(action_type), target_id=target_id,
        changes=orjson.dumps(list(changes)).decode() if changes else None,
        options=orjson.dumps(options).decode() if options else None,
        reason=reason[:MAX_REASON_LENGTH] if reason else None,
    )
    session.add(entry)
    if events is not None:
        events.record(session, lambda dispatch: [dispatch.guild("GUILD_AUDIT_LOG_ENTRY_CREATE", entry_json(entry),
                                                                guild_id=guild_id)])
    return entry


def record_audit_after_write(session: Session, dispatch, records_events: bool, **entry: Any) -> None:
    """For the message services, whose writes commit through ChannelWrites rather than ``session``: record the
    entry (see :func:`record_audit`; ``dispatch`` is their Dispatch, whose ids it takes) in a transaction of its
    own, right after the write has committed. A failure between the two loses the entry, never the write."""
    record_audit(session, dispatch.ids, SessionEvents(dispatch if records_events else None), **entry)
    session.commit()


def entry_json(entry: AuditLogEntry) -> dict[str, Any]:
    """Discord's audit log entry object."""
    body: dict[str, Any] = {
        "id": str(entry.id), "user_id": str(entry.user_id), "action_type": entry.action_type,
        "target_id": str(entry.target_id) if entry.target_id is not None else None,
        "changes": orjson.loads(entry.changes) if entry.changes else [],
        "reason": entry.reason,
    }
    if entry.options:
        body["options"] = orjson.loads(entry.options)
    return body


def audit_entries(session: Session, guild_id: int, *, user_id: int | None, action_type: int | None,
                  before: int | None, after: int | None, limit: int) -> list[AuditLogEntry]:
    """Entries newest first; with ``after`` (and no ``before``) the ``limit`` oldest after it, still newest
    first, as Discord pages them. The caller has checked VIEW_AUDIT_LOG."""
    query = select(AuditLogEntry).where(AuditLogEntry.guild_id == guild_id)
    if user_id is not None:
        query = query.where(AuditLogEntry.user_id == user_id)
    if action_type is not None:
        query = query.where(AuditLogEntry.action_type == action_type)
    if before is not None:
        query = query.where(AuditLogEntry.id < before)
    if after is not None:
        query = query.where(AuditLogEntry.id > after)
    oldest_first = after is not None and before is None
    order = AuditLogEntry.id.asc() if oldest_first else AuditLogEntry.id.desc()
    entries = list(session.scalars(query.order_by(order).limit(limit)))
    if oldest_first:
        entries.reverse()
    return entries


_WEBHOOK_ACTIONS = frozenset({AuditAction.WEBHOOK_CREATE, AuditAction.WEBHOOK_UPDATE, AuditAction.WEBHOOK_DELETE})
_THREAD_ACTIONS = frozenset({AuditAction.THREAD_CREATE, AuditAction.THREAD_UPDATE, AuditAction.THREAD_DELETE})


def audit_targets(session: Session, guild_id: int,
                  entries: Iterable[AuditLogEntry]) -> tuple[list[Webhook], list[tuple[Channel, Thread]]]:
    """The webhooks and the thread channels (with their ``threads`` rows) that ``entries`` act on and that still
    exist, by id, for the page's ``webhooks`` and ``threads``: a query each, none when no entry targets one."""
    entries = list(entries)
    webhook_ids = {e.target_id for e in entries if e.action_type in _WEBHOOK_ACTIONS and e.target_id is not None}
    thread_ids = {e.target_id for e in entries if e.action_type in _THREAD_ACTIONS and e.target_id is not None}
    webhooks = list(session.scalars(select(Webhook).where(Webhook.guild_id == guild_id, Webhook.id.in_(webhook_ids))
                                    .order_by(Webhook.id))) if webhook_ids else []
    threads = [(channel, thread) for channel, thread in session.execute(
        select(Channel, Thread).join(Thread, Thread.channel_id == Channel.id)
        .where(Thread.guild_id == guild_id, Channel.id.in_(thread_ids)).order_by(Channel.id))] if thread_ids else []
    return webhooks, threads
