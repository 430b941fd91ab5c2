"""Inserts for idempotent endpoints that stay idempotent when two identical requests race."""
from __future__ import annotations

from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session


def add_unless_present(session: Session, row) -> bool:
    """Insert ``row`` inside a savepoint; False when another transaction committed its primary key first.

    Two identical PUTs racing on PostgreSQL both find no row, and the later INSERT meets the earlier one's row
    as a unique violation; the outcome the client asked for exists, so that is not an error. Any other
    integrity error (say, a foreign key to a row deleted meanwhile) still escapes.
    """
    key = inspect(row).mapper.primary_key_from_instance(row)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        if session.get(type(row), tuple(key)) is None:
            raise
        return False
    return True
