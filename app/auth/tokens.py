"""API tokens: ``<base64url(token id)>.<secret>``. The secret is random, shown once, and stored as SHA-256.

Lookup is by the token id (a primary key), then the digests are compared in constant time, so neither the
database query nor the comparison reveals how much of a guessed secret was right.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.domain import KeptToken, UserSnapshot
from app.errors import Unauthorized
from app.ids import parse_snowflake
from app.read_cache import ReadPath
from models import Token, User
from models.base import begin_read_only

#: last_used_at is a hint for operators, so it is written at most this often per token, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)
_BOT_PREFIX = "Bot "


@dataclass(frozen=True)
class IssuedToken:
    token_id: int
    user_id: int
    value: str


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _encode_id(token_id: int) -> str:
    return base64.urlsafe_b64encode(str(token_id).encode()).decode().rstrip("=")


def _decode_id(encoded: str) -> int | None:
    try:
        return parse_snowflake(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("ascii"))
    except ValueError:  # not base64 (binascii.Error), not ASCII, or no snowflake (InvalidSnowflake): all ValueErrors
        return None


def issue_token(session: Session, token_id: int, user_id: int) -> IssuedToken:
    """Create a token for ``user_id``; the caller commits. The returned value is the only copy of the secret."""
    secret = secrets.token_urlsafe(32)
    session.add(Token(
        id=token_id, user_id=user_id, secret_sha256=_digest(secret), created_at=datetime.now(timezone.utc),
    ))
    return IssuedToken(token_id=token_id, user_id=user_id, value=f"{_encode_id(token_id)}.{secret}")


def revoke_token(session: Session, token_id: int) -> bool:
    """Revoke a token; False when there is no such live token. The caller commits."""
    return session.execute(
        update(Token).where(Token.id == token_id, Token.revoked_at.is_(None))
        .values(revoked_at=datetime.now(timezone.utc))
    ).rowcount == 1


def authenticate(session: Session, authorization: str | None, reads: ReadPath) -> UserSnapshot:
    """The user behind an ``Authorization: Bot <token>`` header, or Unauthorized."""
    if not authorization or not authorization.startswith(_BOT_PREFIX):
        raise Unauthorized()
    encoded_id, dot, secret = authorization[len(_BOT_PREFIX):].strip().partition(".")
    token_id = _decode_id(encoded_id) if dot else None
    if token_id is None or not secret:
        raise Unauthorized()
    token = reads.token(token_id)
    if token is None:
        token = _load(session, token_id)
        if token is None:
            raise Unauthorized()
        reads.keep_token(token_id, token)
    if token.revoked or not hmac.compare_digest(token.secret_sha256, _digest(secret)):
        raise Unauthorized()
    now = datetime.now(timezone.utc)
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        session.execute(update(Token).where(Token.id == token_id).values(last_used_at=now))
        session.commit()
        token.last_used_at = now
    return token.user


def _load(session: Session, token_id: int) -> KeptToken | None:
    begin_read_only(session)
    found = session.execute(select(Token, User).join(User, User.id == Token.user_id)
                            .where(Token.id == token_id)).first()
    session.commit()
    if found is None:
        return None
    token, user = found
    return KeptToken(secret_sha256=token.secret_sha256, revoked=token.revoked_at is not None,
                     last_used_at=token.last_used_at, user=UserSnapshot.of(user))
