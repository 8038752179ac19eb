"""Shared by the web tests: the test password, signing a client in, reading forms, and
sessions in a given state made through the services (as any edge would)."""

from __future__ import annotations

import re
from collections.abc import Callable

from flask.testing import FlaskClient

from pamcore.core import Pamcore
from pamcore.model import User
from pamcore.services import scheduler
from pamcore.services.approvals import approve_session
from pamcore.services.sessions import SessionRequest, create_session
from tests.world import fresh

#: Every web test user's password (the ``web_world`` fixture sets it).
PASSWORD = "web-test-password-1"

#: The ``login`` fixture: a fresh client signed in as the given user.
Login = Callable[[str], FlaskClient]


def sign_in(client: FlaskClient, username: str, password: str = PASSWORD) -> FlaskClient:
    response = client.post("/login", data={"username": username, "password": password})
    assert response.status_code == 303, response.data
    return client


def csrf_token(html: bytes) -> str:
    """The CSRF token a page's form carries."""
    found = re.search(rb'name="csrf_token" value="([^"]+)"', html)
    assert found, "page has no CSRF token"
    return found.group(1).decode()


def field_errors(html: bytes) -> list[str]:
    return [m.decode() for m in re.findall(rb'class="field-error"[^>]*>([^<]*)<', html)]


def request_session(
    core: Pamcore, user: User, activity: str, resource: str, ticket: str = ""
) -> int:
    with core.unit() as db:
        request = SessionRequest(activity, (resource,), notes="test", ticket=ticket)
        return create_session(core, db, fresh(db, user), request).id


def approve(core: Pamcore, approver: User, session_id: int) -> None:
    with core.unit() as db:
        approve_session(core, db, fresh(db, approver), session_id, "ok")


def available_checkout(core: Pamcore, user: User) -> int:
    """alice's (or bob's) 'Check out root' on db01: no approval, Available after a tick."""
    session_id = request_session(core, user, "Check out root", "db01")
    scheduler.tick(core)
    return session_id
