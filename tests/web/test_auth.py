"""Sign-in: password, lockout, per-address limit, `next`, second factor, re-authentication."""

from __future__ import annotations

from pathlib import Path

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from pamcore.clock import FrozenClock
from pamcore.config import load_config
from pamcore.core import Pamcore
from pamcore.errors import ConfigurationError
from pamcore.model import AuditEvent, User
from pamcore.services import directory
from pamcore.services.common import CONSOLE
from pamcore.web.app import create_app
from tests.web.helpers import PASSWORD, Login
from tests.world import World


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


def _copy(app: Flask, client: FlaskClient) -> FlaskClient:
    """Another browser holding a copy of ``client``'s session cookie."""
    cookie = client.get_cookie("pamcore_session")
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie("pamcore_session", cookie.value)
    return thief


def _signed_in(client: FlaskClient) -> bool:
    return client.get("/active").status_code == 200


def test_a_cookie_copied_before_sign_out_is_dead_after(app: Flask, login: Login) -> None:
    """Issue 11 item 4: signing out ends the sign-in on the server, and every other one of
    the same person with it; a second person stays signed in."""
    alice = login("alice")
    copy, laptop, carol = _copy(app, alice), login("alice"), login("carol")
    assert _signed_in(copy)
    alice.post("/logout")
    assert not _signed_in(copy)
    assert not _signed_in(laptop)
    assert _signed_in(carol)


def test_new_password_disabling_and_sign_out_everywhere_end_every_sign_in(
    app: Flask, core: Pamcore, login: Login
) -> None:
    alice = login("alice")
    with core.unit() as db:
        directory.set_password(core, db, CONSOLE, "alice", PASSWORD)
    assert not _signed_in(alice)

    alice = login("alice")
    erin = login("erin")
    page = erin.post(
        "/admin/users/sign_out", data={"username": "alice"}, follow_redirects=True
    ).data
    assert b"alice is signed out of every browser" in page
    assert not _signed_in(alice)
    assert _signed_in(erin)

    alice = login("alice")
    with core.unit() as db:
        directory.set_active(core, db, CONSOLE, "alice", False)
        directory.set_active(core, db, CONSOLE, "alice", True)
    assert not _signed_in(alice)  # enabling again does not bring old sign-ins back
    with core.reader() as db:
        actions = db.scalars(select(AuditEvent.action).where(AuditEvent.target == "alice")).all()
    assert "user.signed_out_everywhere" in actions


def test_sign_ins_end_when_idle_and_at_their_lifetime(
    app: Flask, core: Pamcore, clock: FrozenClock, login: Login
) -> None:
    """Both limits come from pamcore.toml and are read on the core's clock; a table that
    refreshes itself is not the person being there."""
    core.config = core.config.with_overrides(web_idle_minutes=10, web_session_hours=1)
    alice = login("alice")
    for _ in range(6):  # a click every 9 minutes keeps the sign-in ...
        clock.advance(minutes=9)
        assert _signed_in(alice)
    clock.advance(minutes=9)  # ... up to its lifetime (54 + 9 minutes > 1 hour)
    assert not _signed_in(alice)

    alice = login("alice")
    clock.advance(minutes=6)
    assert alice.get("/table/active", headers={"HX-Request": "true"}).status_code == 200
    clock.advance(minutes=5)  # 11 minutes since the last click
    assert not _signed_in(alice)


def test_session_limits_are_settings(tmp_path: Path) -> None:
    (tmp_path / "pamcore.toml").write_text(
        "[pamcore]\nweb_idle_minutes = 15\nweb_session_hours = 8\n"
    )
    config = load_config(tmp_path)
    assert (config.web_idle_minutes, config.web_session_hours) == (15, 8)
    assert load_config(tmp_path / "none").web_idle_minutes == 30
    (tmp_path / "pamcore.toml").write_text("[pamcore]\nweb_idle_minutes = 0\n")
    with pytest.raises(ConfigurationError, match="web_idle_minutes must be more than 0"):
        load_config(tmp_path)
