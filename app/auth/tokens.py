"""API tokens and OAuth2-style access tokens, both ``<base64url(token id)>.<secret>``. The secret is random,
shown once, and stored as SHA-256.

Lookup is by the token id (a primary key), then the digests are compared in constant time, so neither the
database query nor the comparison reveals how much of a guessed secret was right.

An API token authenticates a request (``Authorization: Bot ...``). An access token authenticates nothing by
itself: it is a user's consent, given to one client (a bot) for some scopes until it expires, which a route that
acts on that user checks (``guilds.join``: PUT /guilds/{id}/members/{user_id}, as on Discord).
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
from app.errors import InvalidAccessToken, Unauthorized
from app.ids import parse_snowflake
from app.read_cache import ReadPath
from models import AccessToken, Token, User
from models.base import begin_read_only

#: last_used_at is a hint for operators, so it is written at most this often per token, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)
_BOT_PREFIX = "Bot "
#: Scopes an access token may carry: the ones some route checks (a scope nothing checks would be granted for nothing).
SCOPES = ("guilds.join",)
#: Discord's access tokens last a week unless refreshed.
ACCESS_TOKEN_LIFETIME = timedelta(days=7)


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


def issue_access_token(session: Session, token_id: int, user_id: int, client_id: int, scopes: tuple[str, ...],
                       lifetime: timedelta = ACCESS_TOKEN_LIFETIME) -> IssuedToken:
    """Record ``user_id``'s consent to ``client_id`` acting for them within ``scopes``; the caller commits. The
    returned value is the only copy of the secret."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"scopes must be some of {', '.join(SCOPES)}, got {' '.join(scopes) or 'none'}")
    secret = secrets.token_urlsafe(32)
    now = datetime.now(timezone.utc)
    session.add(AccessToken(id=token_id, user_id=user_id, client_id=client_id, scopes=" ".join(sorted(set(scopes))),
                            secret_sha256=_digest(secret), created_at=now, expires_at=now + lifetime))
    return IssuedToken(token_id=token_id, user_id=user_id, value=f"{_encode_id(token_id)}.{secret}")


def check_access_token(session: Session, value: str, *, user_id: int, client_id: int, scope: str) -> None:
    """Raise InvalidAccessToken unless ``value`` is a live access token of ``user_id``, granted to ``client_id``,
    with ``scope``. Read from the database every time, so a revocation holds from the next request."""
    encoded_id, dot, secret = value.partition(".")
    token_id = _decode_id(encoded_id) if dot else None
    token = session.get(AccessToken, token_id) if token_id is not None and secret else None
    valid = (token is not None and hmac.compare_digest(token.secret_sha256, _digest(secret))
             and token.revoked_at is None and token.expires_at > datetime.now(timezone.utc)
             and token.user_id == user_id and token.client_id == client_id and scope in token.scopes.split())
    if not valid:
        raise InvalidAccessToken()


#: Discord's webhook tokens are 68 URL-safe characters; discord.py's ``Webhook.from_url`` wants 60 or more.
WEBHOOK_TOKEN_BYTES = 51


def new_webhook_token() -> tuple[str, bytes]:
    """A webhook's token and the SHA-256 to keep of it: the token itself is shown once, at creation."""
    token = secrets.token_urlsafe(WEBHOOK_TOKEN_BYTES)
    return token, _digest(token)


def webhook_token_matches(token_sha256: bytes, token: str) -> bool:
    """Whether ``token`` is the one whose digest is kept, compared in constant time."""
    return hmac.compare_digest(token_sha256, _digest(token))


def revoke_token(session: Session, token_id: int) -> bool:
    """Revoke an API token or an access token; False when there is no such live token. The caller commits."""
    now = datetime.now(timezone.utc)
    return any(session.execute(
        update(model).where(model.id == token_id, model.revoked_at.is_(None)).values(revoked_at=now)
    ).rowcount == 1 for model in (Token, AccessToken))


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
