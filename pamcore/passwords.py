"""User passwords: argon2id hashes (argon2-cffi, RFC 9106) and the lockout rule."""

from __future__ import annotations

import datetime as dt
import functools
import secrets
import string

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from pamcore.errors import ValidationError

#: RFC 9106 §4 "second recommended option" scaled to a server: 64 MiB, 3 passes.
_HASHER = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=4)

MAX_FAILURES = 5
LOCKOUT = dt.timedelta(minutes=15)
MIN_LENGTH = 12


def hash_password(password: str) -> str:
    check_strength(password)
    return _HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _nobodys_hash() -> str:
    return _HASHER.hash(secrets.token_urlsafe(24))


def verify_for_nobody(password: str) -> bool:
    """Spend what checking a real password spends, then say no: a sign-in for a username
    that does not exist must not answer faster than one that does (username probing)."""
    verify_password(_nobodys_hash(), password)
    return False


def needs_rehash(stored_hash: str) -> bool:
    return _HASHER.check_needs_rehash(stored_hash)


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise ValidationError("password", f"must be at least {MIN_LENGTH} characters long")
    if password.strip() != password:
        raise ValidationError("password", "must not start or end with whitespace")


def generate_password(length: int = 24) -> str:
    """A random password for ephemeral accounts: letters, digits and a few safe symbols
    (no quotes or backslashes, which break shell and device command lines)."""
    alphabet = string.ascii_letters + string.digits + "-_.+=@%"
    while True:
        pw = "".join(secrets.choice(alphabet) for _ in range(length))
        if (
            any(c.isdigit() for c in pw)
            and any(c.isupper() for c in pw)
            and any(c.islower() for c in pw)
        ):
            return pw
