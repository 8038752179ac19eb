"""Authentication against pamcore's own user table (argon2id), with lockout.

Registered ``trylast`` so a directory plugin (LDAP) can answer for its users first.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pamcore import hookimpl
from pamcore.clock import format_utc
from pamcore.model import User
from pamcore.passwords import (
    LOCKOUT,
    MAX_FAILURES,
    hash_password,
    needs_rehash,
    verify_for_nobody,
    verify_password,
)
from pamcore.registry import AuthResult


@hookimpl(trylast=True)
def pamcore_authenticate(
    core: Any, db: Session, username: str, password: str, factors: dict[str, Any]
) -> AuthResult:
    now = core.now()
    user = db.scalar(select(User).where(func.lower(User.username) == username.strip().lower()))
    if user is None or user.password_hash is None:
        verify_for_nobody(password)
        return AuthResult(False, reason="wrong username or password")
    if user.locked_until is not None and user.locked_until > now:
        return AuthResult(
            False,
            user=user,
            reason="too many failed sign-ins; try again after "
            f"{format_utc(user.locked_until, now)}",
        )
    if not verify_password(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILURES:
            user.locked_until = now + LOCKOUT
            user.failed_logins = 0
        return AuthResult(False, user=user, reason="wrong username or password")
    if not user.is_active:
        return AuthResult(False, user=user, reason="this account is disabled")
    user.failed_logins = 0
    user.locked_until = None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return AuthResult(True, user=user)
