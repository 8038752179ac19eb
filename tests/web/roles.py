"""Shared by the API and admin tests: an app for the test world, a client signed in as any
of its people (or holding an API token), and the role table every route is checked against.

alice and bob are users, carol an approver, erin an admin, ivy an auditor (see World).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import URLSafeTimedSerializer

from pamcore.core import Pamcore
from pamcore.model import Role, User
from pamcore.services import signins, tokens
from pamcore.services.common import CONSOLE
from pamcore.testing import builders as b
from pamcore.web.app import create_app
from pamcore.web.auth import remember_sign_in

#: Everyone the role tests sign in as, by role.
PEOPLE = {"user": "alice", "approver": "carol", "admin": "erin", "auditor": "ivy"}


def build_app(core: Pamcore, **config: Any) -> Flask:
    """The real app; CSRF stays on unless a test turns it off."""
    with core.unit() as db:
        if db.query(User).filter_by(username="ivy").one_or_none() is None:
            b.make_user(db, "ivy", Role.AUDITOR)
    return create_app(core, {"TESTING": True, **config})


def signed_in(app: Flask, core: Pamcore, username: str | None) -> FlaskClient:
    """A client with a fresh dashboard sign-in as ``username`` (``None``: anonymous)."""
    client = app.test_client()
    if username is None:
        return client
    with core.reader() as db:
        user = db.query(User).filter_by(username=username).one()
        sign_in = signins.start_sign_in(core, user)
    with client.session_transaction() as session:
        session["_user_id"] = str(sign_in.user_id)
        session["_fresh"] = True
        remember_sign_in(session, sign_in)
        session["auth_at"] = core.now().timestamp()
    return client


def csrf_token(app: Flask, client: FlaskClient) -> str:
    """A CSRF token valid for ``client``'s session, as a form or ``X-CSRFToken`` carries it
    (Flask-WTF signs the session's raw token with the app's secret key)."""
    raw = secrets.token_hex(20)
    with client.session_transaction() as session:
        session["csrf_token"] = raw
    return URLSafeTimedSerializer(app.secret_key, salt="wtf-csrf-token").dumps(raw)


def api_token(core: Pamcore, username: str) -> str:
    with core.unit() as db:
        return tokens.create_token(core, db, CONSOLE, username, f"tests {time.time()}").token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
