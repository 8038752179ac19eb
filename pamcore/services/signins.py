"""Dashboard sign-ins, kept in check on the server: the browser's cookie only says which
sign-in it holds, and every request asks here whether that sign-in still stands.

Each user row carries a sign-in generation; a cookie names the generation it was issued
under. Signing out, a new password, disabling the account or an administrator's "sign out
everywhere" move the generation on, which ends every sign-in of that user at once. Sign-ins
also end after ``web_idle_minutes`` without a request and ``web_session_hours`` after the
password was typed, both on the core's clock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.model import User
from pamcore.services.common import Actor, by_name, require_admin


@dataclass(frozen=True)
class SignIn:
    """What a dashboard cookie holds about its sign-in (times are core-clock seconds)."""

    user_id: int
    generation: int
    signed_in_at: float
    seen_at: float


def start_sign_in(core: Pamcore, user: User) -> SignIn:
    """A new sign-in for ``user`` (after the password, and the code when one is needed)."""
    now = core.now().timestamp()
    return SignIn(user.id, user.sign_in_generation, now, now)


def current_sign_in(
    core: Pamcore, db: Session, sign_in: SignIn, *, activity: bool = True
) -> tuple[User, SignIn] | None:
    """The user and the sign-in as of now, or ``None`` when it has ended: signed out
    everywhere since, disabled or deleted, idle too long, or older than its lifetime.
    ``activity=False`` (a table refreshing itself) does not count as the person being there."""
    user = db.get(User, sign_in.user_id)
    if user is None or not user.is_active or user.sign_in_generation != sign_in.generation:
        return None
    config = core.config
    now = core.now().timestamp()
    if now - sign_in.seen_at >= config.web_idle_minutes * 60:
        return None
    if now - sign_in.signed_in_at >= config.web_session_hours * 3600:
        return None
    return user, replace(sign_in, seen_at=now) if activity else sign_in


def end_sign_ins(user: User) -> None:
    """End every dashboard sign-in of ``user``; the caller audits why."""
    user.sign_in_generation += 1


def sign_out(core: Pamcore, db: Session, user: User) -> None:
    """The person signs out: every browser of theirs is signed out with this one, so a
    copy of the cookie taken before is worth nothing after."""
    end_sign_ins(user)
    core.audit(db, user.username, "auth.signed_out", target=user.username)


def sign_out_everywhere(core: Pamcore, db: Session, actor: Actor, username: str) -> User:
    """An administrator ends every dashboard sign-in of ``username`` (a lost laptop)."""
    require_admin(actor, "sign other users out")
    user = by_name(db, User, username)
    end_sign_ins(user)
    core.audit(db, actor.username, "user.signed_out_everywhere", target=user.username)
    return user
