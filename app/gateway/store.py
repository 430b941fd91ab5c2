"""Gateway state shared by every worker through the SQL database: resumable sessions and identify records."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone

import orjson
from sqlalchemy import Connection, Engine, and_, delete, func, insert, or_, select, update

from models import gateway_identifies, gateway_sessions

#: Discord's session start limit window, and its max_concurrency bucket.
START_LIMIT_WINDOW = timedelta(hours=24)
CONCURRENCY_WINDOW = timedelta(seconds=5)


@dataclass
class SavedSession:
    """What a RESUME needs: who, with which intents and shard, in which guilds, and how sequence numbers map to
    stream positions.

    ``base`` holds, per partition (as a string key, JSON's), the position through which the client has received
    (or the session filtered out) everything, as of sequence ``base_seq``; ``pending`` lists ``[seq, partition,
    position]`` for each dispatch sent after ``base_seq`` (position None for dispatches of no stream event).
    ``seq`` is the last sequence number sent.
    """

    user_id: int
    intents: int
    shard: list[int]
    guilds: list[int]
    seq: int
    base_seq: int
    base: dict[str, str | None]
    pending: list[list] = field(default_factory=list)

    def positions_at(self, seq: int) -> dict[int, str | None]:
        """Per partition, the position after which the events the client has not received start, if its last
        received sequence number is ``seq`` (``base_seq <= seq <= self.seq``)."""
        positions = {int(p): pos for p, pos in self.base.items()}
        for sent_seq, partition, position in self.pending:
            if sent_seq <= seq and position is not None:
                positions[partition] = position
        return positions


class SessionStore:
    def __init__(self, engine: Engine, *, resume_window: timedelta):
        self.engine = engine
        self.resume_window = resume_window

    def save(self, session_id: str, owner: str, saved: SavedSession, *, open_: bool) -> None:
        """Save the session as ``owner`` last knew it; nothing changes when another connection has taken it."""
        now = datetime.now(timezone.utc)
        values = {"user_id": saved.user_id, "state": orjson.dumps(asdict(saved)), "open": open_, "saved_at": now,
                  "expires_at": now + self.resume_window}
        with self.engine.begin() as connection:
            updated = connection.execute(update(gateway_sessions).where(
                gateway_sessions.c.session_id == session_id, gateway_sessions.c.owner == owner).values(**values))
            if updated.rowcount == 0 and connection.execute(select(gateway_sessions.c.owner).where(
                    gateway_sessions.c.session_id == session_id)).first() is None:
                connection.execute(insert(gateway_sessions).values(session_id=session_id, owner=owner, **values))

    def claim(self, session_id: str, user_id: int, owner: str, *,
              stale_before: datetime) -> tuple[str, SavedSession | None]:
        """Take a closed (or abandoned: open but not saved since ``stale_before``) session of ``user_id`` for
        ``owner``; another user's session is "unknown".

        Returns ("ok", state), ("unknown", None) when there is no such live session, or ("busy", None) when a
        connection still serves it.
        """
        now = datetime.now(timezone.utc)
        with self.engine.begin() as connection:
            row = connection.execute(select(gateway_sessions.c.state, gateway_sessions.c.expires_at)
                                     .where(gateway_sessions.c.session_id == session_id,
                                            gateway_sessions.c.user_id == user_id)).first()
            if row is None or row.expires_at <= now:
                return "unknown", None
            taken = connection.execute(
                update(gateway_sessions)
                .where(gateway_sessions.c.session_id == session_id,
                       or_(gateway_sessions.c.open.is_(False), gateway_sessions.c.saved_at < stale_before))
                .values(open=True, saved_at=now, owner=owner))
            if taken.rowcount == 0:
                return "busy", None
        return "ok", SavedSession(**orjson.loads(row.state))

    def forget_expired(self) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(gateway_sessions)
                               .where(gateway_sessions.c.expires_at < datetime.now(timezone.utc)))

    # -- identify limits -------------------------------------------------------------------------------------

    def record_identify(self, user_id: int, *, day_limit: int, concurrency: int) -> str | None:
        """Record an IDENTIFY unless a limit is reached: None when recorded, else "day" or "concurrency"."""
        now = datetime.now(timezone.utc)
        with self.engine.begin() as connection:
            connection.execute(delete(gateway_identifies).where(and_(
                gateway_identifies.c.user_id == user_id,
                gateway_identifies.c.identified_at <= now - START_LIMIT_WINDOW)))
            day_count = connection.execute(
                select(func.count()).select_from(gateway_identifies)
                .where(gateway_identifies.c.user_id == user_id)).scalar()
            if day_count >= day_limit:
                return "day"
            recent = connection.execute(
                select(func.count()).select_from(gateway_identifies)
                .where(gateway_identifies.c.user_id == user_id,
                       gateway_identifies.c.identified_at > now - CONCURRENCY_WINDOW)).scalar()
            if recent >= concurrency:
                return "concurrency"
            connection.execute(insert(gateway_identifies).values(user_id=user_id, identified_at=now))
        return None


def identify_counts(connection: Connection, user_id: int) -> tuple[int, datetime | None]:
    """Identifies of the user in the last 24 h, and the oldest of them (on the caller's connection)."""
    now = datetime.now(timezone.utc)
    count, oldest = connection.execute(
        select(func.count(), func.min(gateway_identifies.c.identified_at))
        .where(gateway_identifies.c.user_id == user_id,
               gateway_identifies.c.identified_at > now - START_LIMIT_WINDOW)).one()
    if isinstance(oldest, str):
        # SQLite hands an aggregate back as stored text: the column's type does not apply to MIN().
        oldest = datetime.fromisoformat(oldest)
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=timezone.utc)
    return count, oldest
