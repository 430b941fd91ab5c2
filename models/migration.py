"""Bookkeeping for moving messages between stores while the service runs (app.messages.dual)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Integer
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Snowflake, UTCDateTime


class DualWriteEntry(Base):
    """A message (or, with ``message_id`` 0, a whole channel) written through dual writes.

    ``pending`` says the secondary store may not hold the primary's state yet; ``version`` grows with every
    write so that a writer only clears ``pending`` when nobody wrote the same message after it.
    """

    __tablename__ = "dual_write_log"

    channel_id: Mapped[int] = mapped_column(Snowflake, primary_key=True, autoincrement=False)
    message_id: Mapped[int] = mapped_column(Snowflake, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(Integer, default=1)
    pending: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
