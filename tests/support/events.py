"""The events a test's writes recorded: the outbox rows appended since a mark (no relay runs in the API tests)."""
from __future__ import annotations

from sqlalchemy import func, select

from app.events.base import Event, event_from_bytes
from models.events import event_outbox

AUDIT_LOG_ENTRY_CREATE = "GUILD_AUDIT_LOG_ENTRY_CREATE"


class Published:
    """Events appended to the outbox after the mark (set when made, and by :meth:`clear`), oldest first."""

    def __init__(self, engine):
        self._engine = engine
        self._after = self._last_id()

    def _last_id(self) -> int:
        with self._engine.connect() as connection:
            return connection.execute(select(func.coalesce(func.max(event_outbox.c.id), 0))).scalar_one()

    def clear(self) -> None:
        self._after = self._last_id()

    def events(self) -> list[Event]:
        with self._engine.connect() as connection:
            rows = connection.execute(select(event_outbox.c.payload).where(event_outbox.c.id > self._after)
                                      .order_by(event_outbox.c.id)).scalars().all()
        return [event_from_bytes(payload) for payload in rows]

    def dispatches(self, *, audit: bool = False) -> list[tuple[str, dict]]:
        """``(t, d)`` of each event; without the GUILD_AUDIT_LOG_ENTRY_CREATE that moderation and management
        writes add (tests/api/test_audit_log.py checks those) unless ``audit``."""
        return [(event.type, event.data) for event in self.events()
                if audit or event.type != AUDIT_LOG_ENTRY_CREATE]

    def __iter__(self):
        return iter(self.events())

    def __len__(self) -> int:
        return len(self.events())
