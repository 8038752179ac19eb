"""TOTP second factor (RFC 6238) for dashboard sign-in: enrolment with a confirmation code,
and the second step of a sign-in, counted against the same lockout as passwords.

The shared secret lives in the vault (``User.totp_secret_id``); it is shown once, at
enrolment, and never again.
"""

from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import dataclass

import pyotp
from sqlalchemy.orm import Session

from pamcore import metrics
from pamcore.clock import format_utc
from pamcore.core import Pamcore
from pamcore.errors import AuthenticationFailed, NotFound, PolicyDenied, ValidationError
from pamcore.model import Secret, User
from pamcore.passwords import LOCKOUT, MAX_FAILURES
from pamcore.services.common import Actor, is_admin
from pamcore.vault import Revealed

ISSUER = "pamcore"
#: One 30-second step either side (RFC 6238 §5.2 allows for clock drift).
VALID_WINDOW = 1


@dataclass(frozen=True)
class TotpEnrolment:
    """A secret waiting for its first code; ``secret`` and ``uri`` are shown once."""

    secret_id: int
    secret: Revealed
    uri: str

    def __repr__(self) -> str:
        return f"TotpEnrolment(secret_id={self.secret_id}, secret='***')"


def _pending_name(user: User) -> str:
    return f"totp-pending:{user.id}"


def totp_enabled(user: User) -> bool:
    return user.totp_secret_id is not None


def start_enrolment(core: Pamcore, db: Session, user: User) -> TotpEnrolment:
    """A fresh secret in the vault, not yet in force: :func:`confirm_enrolment` with a code
    from the authenticator app puts it in force (so a mistyped scan never locks anyone out)."""
    try:
        db.delete(core.vault.named(db, _pending_name(user)))
        db.flush()
    except NotFound:
        pass
    plain = pyotp.random_base32()
    stored = core.vault.store(db, plain, name=_pending_name(user))
    uri = pyotp.TOTP(plain).provisioning_uri(name=user.username, issuer_name=ISSUER)
    core.audit(db, user.username, "totp.enrolment_started", target=user.username)
    return TotpEnrolment(stored.id, Revealed(plain), uri)


def confirm_enrolment(core: Pamcore, db: Session, user: User, secret_id: int, code: str) -> None:
    """Put the pending secret in force once ``code`` matches it (replacing an older one)."""
    secret = db.get(Secret, secret_id)
    if secret is None or secret.name != _pending_name(user):
        raise ValidationError("code", "this enrolment expired; start again")
    step = _matched_step(core, secret, code)
    if step is None:
        raise ValidationError(
            "code", "the code does not match; check your device's clock and type the newest code"
        )
    old = db.get(Secret, user.totp_secret_id) if user.totp_secret_id else None
    user.totp_last_step = step
    secret.name = None
    user.totp_secret_id = secret.id
    if old is not None:
        db.delete(old)
    core.audit(db, user.username, "totp.enabled", target=user.username)


def disable_totp(core: Pamcore, db: Session, actor: Actor, user: User) -> None:
    """Remove a user's second factor: the user themself, or an admin (a lost phone)."""
    if not (is_admin(actor) or (isinstance(actor, User) and actor.id == user.id)):
        raise PolicyDenied("only the user or an administrator may remove a second factor")
    if user.totp_secret_id is None:
        raise ValidationError("totp", f"{user.username} has no second factor")
    secret = db.get(Secret, user.totp_secret_id)
    user.totp_secret_id = None
    if secret is not None:
        db.delete(secret)
    core.audit(db, actor.username, "totp.disabled", target=user.username)


def verify_second_factor(core: Pamcore, db: Session, user_id: int, code: str) -> User:
    """The second step of a sign-in (after the password). A wrong code counts like a wrong
    password and is committed before raising, as in ``directory.authenticate``."""
    user = db.get(User, user_id)
    if user is None:
        raise AuthenticationFailed("sign in again")
    now = core.now()
    reason = ""
    if user.locked_until is not None and user.locked_until > now:
        reason = f"too many failed sign-ins; try again after {format_utc(user.locked_until, now)}"
    elif not user.is_active:
        reason = "this account is disabled"
    elif user.totp_secret_id is None:
        reason = "this account has no second factor; sign in again"
    else:
        secret = db.get(Secret, user.totp_secret_id)
        step = _matched_step(core, secret, code) if secret is not None else None
        replayed = step is not None and step <= (user.totp_last_step or -1)
        if step is None or replayed:
            user.failed_logins += 1
            if user.failed_logins >= MAX_FAILURES:
                user.locked_until = now + LOCKOUT
                user.failed_logins = 0
            reason = (
                "that code was already used; wait for the next one"
                if replayed
                else "wrong or expired code"
            )
        else:
            user.totp_last_step = step
    if reason:
        core.audit(db, user.username, "auth.failed", target=user.username, reason=reason)
        db.commit()
        metrics.SIGN_IN_FAILURES.labels(method="second_factor").inc()
        raise AuthenticationFailed(reason)
    user.failed_logins = 0
    core.audit(db, user.username, "auth.second_factor", target=user.username)
    return user


def _matched_step(core: Pamcore, secret: Secret, code: str) -> int | None:
    """The RFC 6238 time step ``code`` belongs to (within the drift window), or ``None``;
    the step lets a used code be refused when replayed."""
    code = code.strip().replace(" ", "")
    if not code.isdigit():
        return None
    totp = pyotp.TOTP(core.vault.reveal(secret))
    now = core.now()
    for offset in range(-VALID_WINDOW, VALID_WINDOW + 1):
        moment = now + dt.timedelta(seconds=offset * totp.interval)
        if hmac.compare_digest(totp.at(moment), code):
            return totp.timecode(moment)
    return None
