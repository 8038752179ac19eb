"""API tokens for scripts using the REST API: issued once, stored only as a SHA-256 hash.

A token is ``pam_`` + 32 random bytes (URL-safe base64). The database keeps its hash and a
short prefix for listings, so a stolen database gives no usable token; a lost token is
revoked and a new one issued.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from pamcore.clock import format_utc
from pamcore.core import Pamcore
from pamcore.errors import AuthenticationFailed, NotFound, PolicyDenied, ValidationError
from pamcore.model import ApiToken, User
from pamcore.services.common import Actor, is_admin
from pamcore.services.directory import check_name, get_user

TOKEN_PREFIX = "pam_"  # noqa: S105 (a marker, not a secret)
#: Characters of the token shown in listings (``pam_`` + 8), enough to tell tokens apart.
SHOWN_CHARS = 12
MAX_TOKENS_PER_USER = 20
MAX_LIFETIME = dt.timedelta(days=3660)


@dataclass(frozen=True)
class IssuedToken:
    """A freshly created token: ``token`` is shown to its owner once and never again."""

    record: ApiToken
    token: str

    def __repr__(self) -> str:
        return f"IssuedToken(id={self.record.id}, prefix={self.record.prefix!r}, token='***')"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _owner(db: Session, actor: Actor, username: str, what: str) -> User:
    """Users manage their own tokens; administrators manage everyone's."""
    user = get_user(db, username)
    if not (is_admin(actor) or (isinstance(actor, User) and actor.id == user.id)):
        raise PolicyDenied(f"only {user.username} or an administrator may {what}")
    return user


def create_token(
    core: Pamcore,
    db: Session,
    actor: Actor,
    username: str,
    name: str,
    expires_at: dt.datetime | None = None,
) -> IssuedToken:
    """Issue a token for ``username``; the plain token is in the result and nowhere else."""
    user = _owner(db, actor, username, "create API tokens for this account")
    name = check_name("name", name)
    now = core.now()
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise ValidationError("expires_at", "give a time zone (or use UTC)")
        if expires_at <= now:
            raise ValidationError("expires_at", f"{format_utc(expires_at, now)} is in the past")
        if expires_at > now + MAX_LIFETIME:
            raise ValidationError("expires_at", "at most ten years ahead")
    owned = list_tokens(db, actor, user.username)
    if len(owned) >= MAX_TOKENS_PER_USER:
        raise ValidationError("name", f"at most {MAX_TOKENS_PER_USER} tokens; revoke one first")
    if any(t.name == name for t in owned):
        raise ValidationError("name", f"{user.username} already has a token named '{name}'")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = ApiToken(
        user_id=user.id,
        name=name,
        prefix=token[:SHOWN_CHARS],
        token_hash=hash_token(token),
        created_at=now,
        expires_at=expires_at.astimezone(dt.UTC) if expires_at else None,
    )
    db.add(record)
    db.flush()
    core.audit(
        db,
        actor.username,
        "token.created",
        target=user.username,
        token_id=record.id,
        name=name,
        prefix=record.prefix,
        expires_at=record.expires_at.isoformat() if record.expires_at else None,
    )
    return IssuedToken(record, token)


def list_tokens(db: Session, actor: Actor, username: str) -> list[ApiToken]:
    user = _owner(db, actor, username, "list this account's API tokens")
    return list(
        db.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id))
    )


def revoke_token(core: Pamcore, db: Session, actor: Actor, username: str, token_id: int) -> None:
    """Delete a token; scripts using it are refused from the next request on."""
    user = _owner(db, actor, username, "revoke this account's API tokens")
    record = db.get(ApiToken, token_id)
    if record is None or record.user_id != user.id:
        raise NotFound(f"{user.username} has no API token #{token_id}")
    db.delete(record)
    core.audit(
        db,
        actor.username,
        "token.revoked",
        target=user.username,
        token_id=token_id,
        name=record.name,
        prefix=record.prefix,
    )


def authenticate_token(core: Pamcore, db: Session, token: str) -> User:
    """The active user a presented token belongs to; records when it was last used.

    The look-up is by hash (the database never compares the secret itself) and the found
    hash is compared again in constant time; failures say nothing about which part failed,
    except expiry, which the owner can act on.
    """
    wanted = hash_token(token.strip())
    record = db.scalar(select(ApiToken).where(ApiToken.token_hash == wanted))
    if record is None or not hmac.compare_digest(record.token_hash, wanted):
        raise AuthenticationFailed("invalid API token")
    now = core.now()
    if record.expires_at is not None and record.expires_at <= now:
        raise AuthenticationFailed(
            f"API token '{record.name}' ({record.prefix}...) expired at "
            f"{format_utc(record.expires_at, now)}; create a new one"
        )
    if not record.user.is_active:
        raise AuthenticationFailed("invalid API token")
    record.last_used_at = now
    return record.user


__all__ = [
    "TOKEN_PREFIX",
    "IssuedToken",
    "authenticate_token",
    "create_token",
    "hash_token",
    "list_tokens",
    "revoke_token",
]
