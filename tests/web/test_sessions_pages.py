"""Dashboard tables, session detail, approvals and row actions, for every role."""

from __future__ import annotations

import logging

import pytest

import pamcore
from pamcore.clock import FrozenClock
from pamcore.core import Pamcore
from pamcore.lifecycle import Status
from pamcore.model import ActivitySession, AuditEvent, ConnectionProfile
from pamcore.registry import LaunchInfo, ProtocolHandler
from tests.web.helpers import Login, available_checkout, request_session
from tests.world import ROOT_PASSWORD, World

#: user (requester), approver, admin, auditor.
ROLES = ("alice", "carol", "erin", "ivy")


@pytest.mark.parametrize("username", ROLES)
@pytest.mark.parametrize("path", ["/active", "/scheduled", "/history", "/table/active"])
def test_tables_open_for_every_role(login: Login, username: str, path: str) -> None:
    assert login(username).get(path).status_code == 200


def test_active_table_shows_status_and_only_applicable_actions(
    core: Pamcore, world: World, login: Login
) -> None:
    waiting = request_session(core, world.alice, "Linux Admin", "web01")
    ready = available_checkout(core, world.alice)
    html = login("alice").get("/table/active").data.decode()
    row_waiting = html.split(f'id="session-{waiting}"')[1].split("</tr>")[0]
    row_ready = html.split(f'id="session-{ready}"')[1].split("</tr>")[0]
    assert "Waiting for Approval" in row_waiting
    assert f"/sessions/{waiting}/cancel" in row_waiting
    assert "/password" not in row_waiting and "/connect" not in row_waiting
    assert "Available" in row_ready
    assert f"/sessions/{ready}/password" in row_ready and f"/sessions/{ready}/end" in row_ready
    assert "/extend" not in row_ready  # an hour left; the window opens at 5 minutes
    assert ROOT_PASSWORD not in html


def test_users_see_only_their_sessions_admins_all(
    core: Pamcore, world: World, login: Login
) -> None:
    session_id = available_checkout(core, world.alice)
    assert f'id="session-{session_id}"' not in login("bob").get("/table/active").data.decode()
    assert f'id="session-{session_id}"' in login("erin").get("/table/active").data.decode()
    assert login("bob").get(f"/sessions/{session_id}").status_code == 404


def test_empty_states_say_what_to_do(login: Login) -> None:
    assert b"Click Create Session" in login("bob").get("/active").data
    assert b"Nothing waits for you" in login("carol").get("/approvals/").data


def test_table_polls_itself(login: Login) -> None:
    page = login("alice").get("/active").data
    assert b'hx-get="/table/active"' in page and b'hx-trigger="every 3s"' in page


@pytest.mark.parametrize(("username", "sees"), [("alice", False), ("carol", True), ("ivy", False)])
def test_approvals_page_shows_what_the_service_lets_me_decide(
    core: Pamcore, world: World, login: Login, username: str, sees: bool
) -> None:
    """The page asks the approvals service alone; it adds no role check of its own."""
    session_id = request_session(core, world.alice, "Linux Admin", "web01")
    page = login(username).get("/approvals/")
    assert page.status_code == 200
    assert (f'id="request-{session_id}"' in page.data.decode()) is sees


def test_approve_with_comment_the_requester_sees(core: Pamcore, world: World, login: Login) -> None:
    session_id = request_session(core, world.alice, "Linux Admin", "web01")
    carol = login("carol")
    queue = carol.get("/approvals/").data.decode()
    assert f'id="request-{session_id}"' in queue and "test" in queue
    done = carol.post(f"/approvals/{session_id}/approve", data={"comment": "go ahead"})
    assert done.status_code == 303
    detail = login("alice").get(f"/sessions/{session_id}").data.decode()
    assert "Approved" in detail and "go ahead" in detail and "carol" in detail


def test_deny_and_refusals(core: Pamcore, world: World, login: Login) -> None:
    session_id = request_session(core, world.alice, "Linux Admin", "web01")
    own = login("alice").post(f"/approvals/{session_id}/deny", follow_redirects=True)
    assert b"you are not an approver" in own.data
    refused = login("erin").post(
        f"/approvals/{session_id}/deny", data={"comment": "no"}, follow_redirects=True
    )
    assert b"you are not an approver" in refused.data  # the service's words, as a flash
    login("carol").post(f"/approvals/{session_id}/deny", data={"comment": "not today"})
    detail = login("alice").get(f"/sessions/{session_id}").data.decode()
    assert "Denied" in detail and "not today" in detail


def test_reveal_password_is_audited_in_the_body_only(
    core: Pamcore, world: World, login: Login, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    session_id = available_checkout(core, world.alice)
    response = login("alice").post(f"/sessions/{session_id}/password", data={"purpose": "view"})
    assert response.status_code == 200
    assert ROOT_PASSWORD in response.data.decode()
    assert 'data-seconds="20"' in response.data.decode()
    assert response.headers["Cache-Control"] == "no-store"
    assert ROOT_PASSWORD not in caplog.text
    assert ROOT_PASSWORD not in response.headers.get("Location", "")
    with core.reader() as db:
        assert db.query(AuditEvent).filter_by(action="password.revealed").count() == 1


def test_reveal_is_post_only_and_needs_a_fresh_sign_in(
    core: Pamcore, world: World, login: Login
) -> None:
    session_id = available_checkout(core, world.alice)
    client = login("alice")
    assert client.get(f"/sessions/{session_id}/password").status_code == 405
    with client.session_transaction() as session:
        session["auth_at"] = 0
    stale = client.post(f"/sessions/{session_id}/password", data={"purpose": "view"})
    assert stale.status_code == 303 and stale.headers["Location"].startswith("/reauth")
    with core.reader() as db:
        assert db.query(AuditEvent).filter_by(action="password.revealed").count() == 0


def test_reveal_refused_for_others(core: Pamcore, world: World, login: Login) -> None:
    session_id = available_checkout(core, world.alice)
    refused = login("erin").post(
        f"/sessions/{session_id}/password", data={"purpose": "view"}, follow_redirects=True
    )
    assert b"only the requester may see this password" in refused.data
    assert ROOT_PASSWORD.encode() not in refused.data


def test_extend_appears_near_the_end(
    core: Pamcore, world: World, login: Login, clock: FrozenClock
) -> None:
    session_id = available_checkout(core, world.alice)
    client = login("alice")
    refused = client.post(f"/sessions/{session_id}/extend", follow_redirects=True)
    assert b"you can extend when 5 minutes or less remain" in refused.data
    for _ in range(2):  # a click now and then: the sign-in is not idle
        clock.advance(minutes=28)
        client.get("/active")
    row = client.get("/table/active").data.decode()
    assert f"/sessions/{session_id}/extend" in row and "(1 left after)" in row
    done = client.post(f"/sessions/{session_id}/extend", follow_redirects=True)
    assert b"extended until" in done.data and b"1 extension(s) left" in done.data


def test_cancel_and_end(core: Pamcore, world: World, login: Login) -> None:
    waiting = request_session(core, world.alice, "Linux Admin", "web01")
    ready = available_checkout(core, world.alice)
    client = login("alice")
    assert client.post(f"/sessions/{waiting}/cancel").status_code == 303
    assert client.post(f"/sessions/{ready}/end").status_code == 303
    with core.reader() as db:
        assert Status(db.get(ActivitySession, waiting).status) == Status.CANCELED
        assert Status(db.get(ActivitySession, ready).status) == Status.ENDED
    history = client.get("/table/history").data.decode()
    assert "Canceled" in history and "Ended" in history
    assert login("bob").post(f"/sessions/{ready}/end").status_code == 303  # refused: flash


class _Launcher:
    """A protocol plugin giving a command, a URI and a file for ssh resources."""

    @pamcore.hookimpl
    def pamcore_register_protocols(self, register) -> None:  # type: ignore[no-untyped-def]
        register(
            ProtocolHandler(
                "ssh",
                22,
                client_launch=lambda s, r, u, host, port: LaunchInfo(
                    command=f"ssh -p 4422 {u.username}+{s.activity.name}+{r.name}@{host}",
                    uri=f"ssh://{host}:4422",
                    file=(f"{r.name}.txt", "text/plain", b"hello"),
                ),
            )
        )


def test_connect_page_lists_the_plugins_launches(core: Pamcore, world: World, login: Login) -> None:
    session_id = available_checkout(core, world.alice)
    client = login("alice")
    assert b"No installed protocol plugin" in client.get(f"/sessions/{session_id}/connect").data
    name = core.plugins.register(_Launcher(), "test-launcher")
    try:
        page = client.get(f"/sessions/{session_id}/connect").data.decode()
        assert "ssh -p 4422 alice+Check out root+db01@localhost" in page
        assert 'href="ssh://localhost:4422"' in page
        download = client.get(f"/sessions/{session_id}/connect/db01/ssh")
        assert download.data == b"hello"
        assert "attachment" in download.headers["Content-Disposition"]
        assert login("bob").get(f"/sessions/{session_id}/connect").status_code == 404
    finally:
        core.plugins.unregister(name)


def test_password_window_follows_the_profile(core: Pamcore, world: World, login: Login) -> None:
    with core.unit() as db:
        db.get(ConnectionProfile, world.standard.id).password_view_seconds = 5
    session_id = available_checkout(core, world.alice)
    page = login("alice").post(f"/sessions/{session_id}/password", data={"purpose": "view"})
    assert 'data-seconds="5"' in page.data.decode()
