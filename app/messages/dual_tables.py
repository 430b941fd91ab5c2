"""The dual backend's write log table (app.messages.dual): bookkeeping for moving messages between stores while
the service runs. On ``models.base.Base.metadata``, so Alembic sees it (migrations/env.py imports this module)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Integer
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Snowflake, UTCDateTime


class DualWriteEntry(Base):
    """A message (or, with ``message_id`` 0, a whole channel) written through dual writes.

    ``version`` grows with every write; ``synced_version`` is the version the secondary store is known to hold,
    and ``pending`` says it is behind (``synced_version < version``), kept as its own indexed column so the
    replay finds what to repair without a scan. ``writers`` counts writes between their start and their end, so
    a replay that copies the primary's whole state never races one still on its way to the secondary.
    """

    __tablename__ = "dual_write_log"

    channel_id: Mapped[int] = mapped_column(Snowflake, primary_key=True, autoincrement=False)
    message_id: Mapped[int] = mapped_column(Snowflake, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(Integer, default=1)
    synced_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    writers: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    pending: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
