"""The REST API: every operation for every role (allowed and denied), token and cookie
authentication, CSRF for cookie callers only, problem+json errors, no secret in the logs."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from pamcore.core import Pamcore
from pamcore.model import Group, User
from pamcore.services import scheduler
from tests.web.roles import PEOPLE, api_token, bearer, build_app, csrf_token, signed_in
from tests.world import ROOT_PASSWORD, World

WEB01 = {"activity": "Linux Admin", "resources": ["web01"], "notes": "patch", "ticket": "CHG1"}
DB01 = {"activity": "Check out root", "resources": ["db01"]}


@pytest.fixture
def app(core: Pamcore, world: World) -> Flask:
    return build_app(core)


@pytest.fixture
def tokens(core: Pamcore, app: Flask) -> dict[str, dict[str, str]]:
    """A bearer header per person."""
    names = {*PEOPLE.values(), "bob", "dave"}
    return {name: bearer(api_token(core, name)) for name in names}


class Api:
    """Calls as one person with a bearer token; asserts the status and problem shape."""

    def __init__(self, client: FlaskClient, headers: dict[str, str]) -> None:
        self.client, self.headers = client, headers

    def call(self, method: str, path: str, status: int, body: Any = None) -> Any:
        kwargs: dict[str, Any] = {"headers": self.headers}
        if body is not None:
            kwargs["json"] = body
        response = self.client.open(f"/api/v1{path}", method=method, **kwargs)
        assert response.status_code == status, response.get_data(as_text=True)
        if status >= 400:
            assert response.mimetype == "application/problem+json"
            problem = response.get_json()
            assert problem["status"] == status and problem["detail"] and problem["title"]
            assert problem["type"].startswith(("urn:pamcore:problem:", "about:blank"))
            assert "Traceback" not in response.get_data(as_text=True)
        return response.get_json()


@pytest.fixture
def as_(app: Flask, tokens: dict[str, dict[str, str]]):  # type: ignore[no-untyped-def]
    client = app.test_client()
    return lambda name: Api(client, tokens[name])


def test_openapi_document_is_public(app: Flask) -> None:
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    assert document["openapi"] == "3.1.0"
    assert "/sessions/{session_id}/password" in document["paths"]


def test_no_or_bad_credentials_are_401_problems(app: Flask) -> None:
    client = app.test_client()
    for headers in ({}, {"Authorization": "Basic abc"}, bearer("pam_not-a-token")):
        response = client.get("/api/v1/sessions", headers=headers)
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.get_json()["type"] == "urn:pamcore:problem:authentication"


def test_unknown_address_is_a_json_404(as_) -> None:  # type: ignore[no-untyped-def]
    as_("alice").call("GET", "/nothing/here", 404)


def test_create_list_show_by_role(as_) -> None:  # type: ignore[no-untyped-def]
    created = as_("alice").call("POST", "/sessions", 201, WEB01)
    assert created["status"] == "waiting_for_approval"
    assert created["waiting_for"] == "the Linux Admins group"
    sid = created["id"]
    # bob has no policy for it: 403; a bad body: 400; a wrong field: 422 naming it
    as_("bob").call("POST", "/sessions", 403, WEB01)
    as_("alice").call("POST", "/sessions", 400, ["not", "an", "object"])
    problem = as_("alice").call("POST", "/sessions", 422, {**WEB01, "activity": "Nope"})
    assert problem["field"] == "activity"
    assert as_("alice").call("POST", "/sessions", 422, {**WEB01, "start": "soon"})["field"] == (
        "start"
    )
    assert as_("alice").call("POST", "/sessions", 422, {**WEB01, "resources": "web01"})[
        "field"
    ] == ("resources")
    for name, sees in (("alice", True), ("bob", False), ("erin", True), ("ivy", True)):
        rows = as_(name).call("GET", "/sessions?view=scheduled", 200)
        assert [r["id"] for r in rows] == ([sid] if sees else [])
        as_(name).call("GET", f"/sessions/{sid}", 200 if sees else 404)
    as_("carol").call("GET", f"/sessions/{sid}", 200)  # an eligible approver
    as_("alice").call("GET", "/sessions?view=sometimes", 422)
    as_("alice").call("GET", "/sessions?limit=0", 422)
    as_("alice").call("GET", "/sessions/999", 404)


def test_approve_and_deny_by_role(as_) -> None:  # type: ignore[no-untyped-def]
    sid = as_("alice").call("POST", "/sessions", 201, WEB01)["id"]
    for name in ("alice", "bob", "erin", "ivy"):
        as_(name).call("POST", f"/sessions/{sid}/approve", 403, {"comment": "ok"})
    approved = as_("carol").call("POST", f"/sessions/{sid}/approve", 200, {"comment": "go"})
    assert approved["status"] == "scheduled"
    assert approved["approvals"][0]["comment"] == "go"
    as_("dave").call("POST", f"/sessions/{sid}/deny", 403, {})  # no longer waiting
    as_("alice").call("POST", f"/sessions/{sid}/cancel", 200, {"reason": "done"})
    other = as_("alice").call("POST", "/sessions", 201, {**WEB01, "resources": ["web02"]})["id"]
    denied = as_("dave").call("POST", f"/sessions/{other}/deny", 200, {"comment": "no"})
    assert denied["status"] == "denied" and "no" in denied["outcome"]
    as_("carol").call("POST", "/sessions/999/approve", 404, {})


def test_group_members_without_the_approver_role_cannot_approve(
    core: Pamcore, world: World, as_
) -> None:  # type: ignore[no-untyped-def]
    """Issue 11 item 2: the Linux Admins group also grants access; bob (a requester) and ivy
    (an auditor) in it are members, not approvers, through the API as in the dashboard."""
    with core.unit() as db:
        admins = db.get(Group, world.admins.id)
        admins.members.extend(db.scalars(select(User).where(User.username.in_(("bob", "ivy")))))
    sid = as_("alice").call("POST", "/sessions", 201, WEB01)["id"]
    for name in ("bob", "ivy"):
        problem = as_(name).call("POST", f"/sessions/{sid}/approve", 403, {"comment": "ok"})
        assert "not an approver" in problem["detail"]
    assert as_("carol").call("POST", f"/sessions/{sid}/approve", 200, {})["status"] == "scheduled"


def test_password_extend_cancel_end_by_role(core: Pamcore, as_, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    sid = as_("alice").call("POST", "/sessions", 201, DB01)["id"]
    as_("alice").call("POST", f"/sessions/{sid}/password", 403, {"purpose": "view"})
    scheduler.tick(core)
    for name in ("bob", "carol", "erin", "ivy"):
        as_(name).call("POST", f"/sessions/{sid}/password", 403, {"purpose": "view"})
    as_("alice").call("POST", f"/sessions/{sid}/password", 422, {"purpose": "print"})
    response = as_("alice").client.post(
        f"/api/v1/sessions/{sid}/password", json={"purpose": "copy"}, headers=as_("alice").headers
    )
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    revealed = response.get_json()
    assert revealed["password"] == ROOT_PASSWORD and revealed["username"] == "root"
    assert revealed["seconds"] == 20 and revealed["expires_at"].endswith("Z")
    # Standard: 60 minutes, extension when 5 or less remain
    as_("alice").call("POST", f"/sessions/{sid}/extend", 403)
    core.clock.advance(minutes=56)
    for name in ("bob", "carol", "ivy"):
        as_(name).call("POST", f"/sessions/{sid}/extend", 403)
    extended = as_("alice").call("POST", f"/sessions/{sid}/extend", 200)
    assert extended["extensions_left"] == 1
    core.clock.advance(minutes=30)
    assert as_("erin").call("POST", f"/sessions/{sid}/extend", 200)["extensions_left"] == 0
    for name in ("bob", "carol", "ivy"):
        as_(name).call("POST", f"/sessions/{sid}/end", 403)
        as_(name).call("POST", f"/sessions/{sid}/cancel", 403, {})
    ended = as_("alice").call("POST", f"/sessions/{sid}/end", 200)
    assert ended["status"] == "ended" and ended["finished_at"]
    as_("alice").call("POST", f"/sessions/{sid}/end", 403)
    # an admin may cancel a running session: its ending completes at once
    again = as_("bob").call("POST", "/sessions", 201, DB01)["id"]
    scheduler.tick(core)
    assert as_("erin").call("POST", f"/sessions/{again}/cancel", 200, {})["status"] == "canceled"
    assert ROOT_PASSWORD not in caplog.text


def test_catalog_for_every_role(as_) -> None:  # type: ignore[no-untyped-def]
    for name in ("alice", "carol", "erin", "ivy"):
        activities = as_(name).call("GET", "/activities", 200)
        assert {a["name"] for a in activities} == {"Linux Admin", "Check out root"}
        resources = as_(name).call("GET", "/resources", 200)
        assert {"name": "ssh", "port": 22} in resources[0]["protocols"]


def test_cookie_callers_need_the_csrf_token(core: Pamcore, app: Flask) -> None:
    client = signed_in(app, core, "alice")
    assert client.get("/api/v1/sessions").status_code == 200
    refused = client.post("/api/v1/sessions", json=WEB01)
    assert refused.status_code == 400
    assert refused.get_json()["type"] == "urn:pamcore:problem:csrf"
    headers = {"X-CSRFToken": csrf_token(app, client)}
    assert client.post("/api/v1/sessions", json=WEB01, headers=headers).status_code == 201
    # a bearer caller needs none, even with a session cookie beside it
    fresh = api_token(core, "alice")
    other = {**WEB01, "resources": ["web02"]}
    assert client.post("/api/v1/sessions", json=other, headers=bearer(fresh)).status_code == 201


def test_token_use_is_recorded(core: Pamcore, as_) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from pamcore.model import ApiToken

    as_("alice").call("GET", "/activities", 200)
    with core.reader() as db:
        used = [t.last_used_at for t in db.scalars(select(ApiToken))]
    assert core.now() in used


def test_cookie_reveal_needs_a_recent_sign_in(core: Pamcore, app: Flask) -> None:
    client = signed_in(app, core, "alice")
    headers = {"X-CSRFToken": csrf_token(app, client)}
    sid = client.post("/api/v1/sessions", json=DB01, headers=headers).get_json()["id"]
    scheduler.tick(core)
    reveal = f"/api/v1/sessions/{sid}/password"
    assert client.post(reveal, json={}, headers=headers).status_code == 200
    with client.session_transaction() as session:
        session["auth_at"] = 0
    stale = client.post(reveal, json={}, headers=headers)
    assert stale.status_code == 401
    assert "confirm your password" in stale.get_json()["detail"]


def test_unexpected_errors_are_plain_problems(
    as_, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy.orm.exc import StaleDataError

    from pamcore.web.api import catalog

    def boom(*args):  # type: ignore[no-untyped-def]
        raise RuntimeError("database on fire")

    monkeypatch.setattr(catalog, "page_activities", boom)
    problem = as_("alice").call("GET", "/activities", 500)
    assert "database on fire" not in problem["detail"]
    assert "database on fire" in caplog.text  # for the operator

    def raced(*args):  # type: ignore[no-untyped-def]
        raise StaleDataError("version mismatch")

    monkeypatch.setattr(catalog, "page_activities", raced)
    assert as_("alice").call("GET", "/activities", 409)["type"] == "urn:pamcore:problem:conflict"


def test_ids_beyond_64_bits_are_problems_not_500s(as_) -> None:  # type: ignore[no-untyped-def]
    """Issue 11 item 8: a session id past 2^63-1 reached SQLite (OverflowError, a 500), and
    one past 2^31-1 PostgreSQL's INTEGER column; it is a 422 naming the id, as is one that is
    not a number."""
    for bad in (2**31, 2**64, 0, "1_0", "x"):
        assert as_("alice").call("GET", f"/sessions/{bad}", 422)["field"] == "session_id"
        for action in ("approve", "deny", "cancel", "end", "extend", "password"):
            problem = as_("alice").call("POST", f"/sessions/{bad}/{action}", 422, {})
            assert problem["field"] == "session_id"
    as_("alice").call("GET", f"/sessions/{2**31 - 1}", 404)


def test_undeclared_methods_are_405_problems(as_) -> None:  # type: ignore[no-untyped-def]
    """Issue 11 item 8: TRACE (or PUT...) on an operation's address was the dashboard's HTML
    405; it is a problem with the ``Allow`` header RFC 9110 §15.5.6 asks for."""
    for method, path, allowed in (
        ("TRACE", "/sessions", "GET, HEAD, OPTIONS, POST"),
        ("PUT", "/sessions/1", "GET, HEAD, OPTIONS"),
        ("DELETE", "/sessions/1/approve", "OPTIONS, POST"),
        ("QUERY", "/sessions/1/end", "OPTIONS, POST"),
    ):
        api = as_("alice")
        api.call(method, path, 405)
        response = api.client.open(f"/api/v1{path}", method=method, headers=api.headers)
        assert response.headers["Allow"] == allowed
    as_("alice").call("TRACE", "/nothing/here", 404)
