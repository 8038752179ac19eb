"""What every view needs from the request: the core of this app and the signed-in user as a
row of the caller's unit of work."""

from __future__ import annotations

from typing import cast

from flask import current_app
from flask_login import current_user
from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.errors import AuthenticationFailed
from pamcore.model import User


def current_core() -> Pamcore:
    """The :class:`Pamcore` this app was built with (one per app, never global)."""
    return cast(Pamcore, current_app.extensions["pamcore"])


def acting_user(db: Session) -> User:
    """The signed-in user loaded in ``db``, so services get a row of their own unit."""
    user = db.get(User, int(current_user.get_id()))
    if user is None or not user.is_active:
        raise AuthenticationFailed("your account is no longer available; sign in again")
    return user
