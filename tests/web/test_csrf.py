"""Every form post is refused without its CSRF token (and accepted with it)."""

from __future__ import annotations

import pytest
from flask import Flask

from pamcore.core import Pamcore
from tests.web.helpers import PASSWORD, available_checkout, csrf_token
from tests.world import World

POSTS = [
    "/logout",
    "/reauth",
    "/login/code",
    "/account/second-factor/start",
    "/account/second-factor/confirm",
    "/account/second-factor/remove",
    "/sessions/new/activity",
    "/sessions/new/resources",
    "/sessions/new/notes",
    "/sessions/new/schedule",
    "/sessions/new/review",
    "/sessions/{id}/password",
    "/sessions/{id}/extend",
    "/sessions/{id}/cancel",
    "/sessions/{id}/end",
    "/approvals/{id}/approve",
    "/approvals/{id}/deny",
]


def test_login_form_needs_its_token(csrf_app: Flask) -> None:
    client = csrf_app.test_client()
    refused = client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert refused.status_code == 400 and b"The form expired" in refused.data
    token = csrf_token(client.get("/login").data)
    ok = client.post(
        "/login", data={"username": "alice", "password": PASSWORD, "csrf_token": token}
    )
    assert ok.status_code == 303


@pytest.mark.parametrize("path", POSTS)
def test_every_form_needs_its_token(
    csrf_app: Flask, core: Pamcore, world: World, path: str
) -> None:
    session_id = available_checkout(core, world.alice)
    client = csrf_app.test_client()
    token = csrf_token(client.get("/login").data)
    client.post("/login", data={"username": "erin", "password": PASSWORD, "csrf_token": token})
    response = client.post(path.format(id=session_id), data={"comment": "x"})
    assert response.status_code == 400 and b"The form expired" in response.data
