"""Sign-in: password, lockout, per-address limit, `next`, second factor, re-authentication."""

from __future__ import annotations

import pyotp
import pytest
from flask import Flask

from pamcore.clock import FrozenClock
from pamcore.core import Pamcore
from pamcore.model import AuditEvent, User
from pamcore.web.app import create_app
from tests.conftest import World
from tests.web.conftest import PASSWORD, Login


def test_pages_need_a_sign_in(app: Flask) -> None:
    client = app.test_client()
    for path in ("/active", "/scheduled", "/history", "/sessions/new/activity", "/approvals/"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login?next=")


def test_sign_in_and_out(app: Flask) -> None:
    client = app.test_client()
    response = client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 303 and response.headers["Location"] == "/active"
    assert b"Active Sessions" in client.get("/active").data
    cookie = client.get_cookie("pamcore_session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"
    assert client.post("/logout").status_code == 303
    assert client.get("/active").status_code == 302


def test_wrong_password_says_so_and_is_audited(app: Flask, core: Pamcore) -> None:
    response = app.test_client().post("/login", data={"username": "alice", "password": "nope"})
    assert response.status_code == 401
    assert b"wrong username or password" in response.data
    assert b"nope" not in response.data
    with core.reader() as db:
        assert db.query(AuditEvent).filter_by(action="auth.failed").count() == 1


def test_five_failures_lock_the_account(app: Flask) -> None:
    client = app.test_client()
    for _ in range(5):
        client.post("/login", data={"username": "alice", "password": "wrong"})
    response = client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 401
    assert b"too many failed sign-ins" in response.data


def test_one_address_is_slowed_down_in_its_own_app(core: Pamcore, web_world: World) -> None:
    config = {"TESTING": True, "WTF_CSRF_ENABLED": False, "PAMCORE_SIGN_IN_ATTEMPTS": 3}
    client = create_app(core, config).test_client()
    for name in ("x1", "x2", "x3"):
        assert client.post("/login", data={"username": name, "password": "p"}).status_code == 401
    response = client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 429
    assert b"Too many sign-in attempts" in response.data
    fresh_app = create_app(core, config).test_client()
    response = fresh_app.post("/login", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 303


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/history", "/history"),
        ("https://evil.example/", "/active"),
        ("//evil.example/x", "/active"),
        ("/\\evil.example", "/active"),
        ("javascript:alert(1)", "/active"),
    ],
)
def test_next_is_only_a_path_on_this_host(app: Flask, target: str, expected: str) -> None:
    response = app.test_client().post(
        "/login", data={"username": "alice", "password": PASSWORD, "next": target}
    )
    assert response.headers["Location"] == expected


def test_second_factor_enrolment_and_sign_in(
    app: Flask, core: Pamcore, login: Login, clock: FrozenClock
) -> None:
    client = login("alice")
    page = client.post("/account/second-factor/start")
    assert page.status_code == 200 and b"otpauth://totp/" in page.data
    with core.reader() as db:
        user = db.query(User).filter_by(username="alice").one()
        assert user.totp_secret_id is None  # not in force before a code confirms it
    secret = page.data.split(b'id="totp-secret">')[1].split(b"<")[0].decode()
    assert client.post("/account/second-factor/confirm", data={"code": "000000"}).status_code == 303
    totp = pyotp.TOTP(secret)
    confirm = client.post(
        "/account/second-factor/confirm", data={"code": totp.at(core.now())}, follow_redirects=True
    )
    assert b"Second factor enabled" in confirm.data
    assert b"otpauth" not in client.get("/account/second-factor").data  # shown once only

    other = app.test_client()
    step = other.post("/login", data={"username": "alice", "password": PASSWORD})
    assert step.headers["Location"] == "/login/code"
    assert other.get("/active").status_code == 302  # not signed in yet
    assert other.post("/login/code", data={"code": "123456"}).status_code == 401
    # The code that confirmed the enrolment is spent (RFC 6238 §5.2: no replay).
    replay = other.post("/login/code", data={"code": totp.at(core.now())})
    assert replay.status_code == 401 and b"already used" in replay.data
    clock.advance(seconds=30)
    done = other.post("/login/code", data={"code": totp.at(core.now())})
    assert done.status_code == 303 and done.headers["Location"] == "/active"
    assert other.get("/active").status_code == 200


def test_code_step_needs_the_password_step(app: Flask) -> None:
    response = app.test_client().post("/login/code", data={"code": "123456"})
    assert response.status_code == 303 and response.headers["Location"] == "/login"


def test_removing_the_second_factor(app: Flask, core: Pamcore, login: Login) -> None:
    client = login("alice")
    page = client.post("/account/second-factor/start")
    secret = page.data.split(b'id="totp-secret">')[1].split(b"<")[0].decode()
    client.post("/account/second-factor/confirm", data={"code": pyotp.TOTP(secret).now()})
    client.post("/account/second-factor/remove")
    with core.reader() as db:
        assert db.query(User).filter_by(username="alice").one().totp_secret_id is None


def test_stale_sign_in_must_confirm_before_sensitive_actions(
    app: Flask, core: Pamcore, login: Login
) -> None:
    client = login("alice")
    with client.session_transaction() as session:
        session["auth_at"] = core.now().timestamp() - 3600
    response = client.post("/account/second-factor/start")
    assert response.status_code == 303 and response.headers["Location"].startswith("/reauth")
    assert client.post("/reauth", data={"password": "wrong"}).status_code == 401
    ok = client.post("/reauth", data={"password": PASSWORD, "next": "/account/second-factor"})
    assert ok.headers["Location"] == "/account/second-factor"
    assert client.post("/account/second-factor/start").status_code == 200


def test_disabled_user_is_signed_out(app: Flask, core: Pamcore, login: Login, world: World) -> None:
    client = login("bob")
    with core.unit() as db:
        db.get(User, world.bob.id).is_active = False
    assert client.get("/active").status_code == 302


def test_errors_are_pages_not_tracebacks(app: Flask, login: Login) -> None:
    client = login("alice")
    missing = client.get("/no/such/page")
    assert missing.status_code == 404 and b"Use the menu" in missing.data
    assert b"Traceback" not in missing.data
    session = client.get("/sessions/999")
    assert session.status_code == 404 and b"no activity session #999" in session.data
