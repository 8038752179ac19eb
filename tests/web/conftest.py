"""Web fixtures: the dashboard built on the test core, users with passwords, sign-in."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from pamcore.core import Pamcore
from pamcore.model import Role, User
from pamcore.passwords import hash_password
from pamcore.testing import builders as b
from pamcore.web.app import create_app
from tests.conftest import World

PASSWORD = "web-test-password-1"

Login = Callable[[str], FlaskClient]


@pytest.fixture
def web_world(core: Pamcore, world: World) -> World:
    """The shared world plus ivy the auditor, every user able to sign in with
    :data:`PASSWORD`."""
    with core.unit() as db:
        b.make_user(db, "ivy", Role.AUDITOR)
        hashed = hash_password(PASSWORD)
        for user in db.query(User):
            user.password_hash = hashed
    return world


@pytest.fixture
def app(core: Pamcore, web_world: World) -> Flask:
    return create_app(core, {"TESTING": True, "WTF_CSRF_ENABLED": False})


@pytest.fixture
def csrf_app(core: Pamcore, web_world: World) -> Flask:
    """CSRF as in production: every form post needs the token of its page."""
    return create_app(core, {"TESTING": True})


def sign_in(client: FlaskClient, username: str, password: str = PASSWORD) -> FlaskClient:
    response = client.post("/login", data={"username": username, "password": password})
    assert response.status_code == 303, response.data
    return client


@pytest.fixture
def login(app: Flask) -> Login:
    """A fresh client signed in as the given user."""
    return lambda username: sign_in(app.test_client(), username)


def csrf_token(html: bytes) -> str:
    found = re.search(rb'name="csrf_token" value="([^"]+)"', html)
    assert found, "page has no CSRF token"
    return found.group(1).decode()


def field_errors(html: bytes) -> list[str]:
    return [m.decode() for m in re.findall(rb'class="field-error"[^>]*>([^<]*)<', html)]
