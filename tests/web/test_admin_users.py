"""The admin's user and group pages: lists, a detail page per user (role, state, groups,
recent sessions, sign-in actions) and per group (members, where it is used), edit and new
forms; the changes they send go through the directory service and come back to the page
that sent them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from urllib.parse import quote

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from pamcore.core import Pamcore
from pamcore.model import Role
from pamcore.presenters import group_record, role_words, user_record
from pamcore.services import directory, twofactor
from pamcore.services.common import CONSOLE
from tests.web.admin_pages import chosen, delete_when_confirmed, flash, only_admins, pick, send
from tests.web.chromium import sign_in
from tests.web.helpers import request_session
from tests.web.roles import build_app, signed_in
from tests.world import World

PAGES = [
    "/admin/users",
    "/admin/users/new",
    "/admin/user/alice",
    "/admin/user/alice/edit",
    "/admin/groups",
    "/admin/groups/new",
    "/admin/group/Linux%20Admins",
    "/admin/group/Linux%20Admins/edit",
]


@pytest.fixture
def app(core: Pamcore, world: World) -> Flask:
    return build_app(core)


def post(app: Flask, client: FlaskClient, change: str, **data: str | list[str]) -> tuple[str, str]:
    """Send a users change as its form does: the page it landed on (as links name it) and
    the message shown there."""
    landed, said = send(app, client, "users", change, **data)
    return quote(landed), said


def user(core: Pamcore, username: str) -> dict[str, object]:
    with core.reader() as db:
        return user_record(directory.get_user(db, username))


def members(core: Pamcore, group: str) -> list[str]:
    with core.reader() as db:
        return sorted(group_record(directory.get_group(db, group))["members"])


def test_user_and_group_pages_are_for_admins_only(core: Pamcore, app: Flask) -> None:
    only_admins(app, core, PAGES, "users", ["update", "group_update"], username="x", group="x")
    admin = signed_in(app, core, "erin")
    assert admin.get("/admin/user/nobody").status_code == 404
    assert admin.get("/admin/group/nobody/edit").status_code == 404


def test_every_role_is_said_in_words() -> None:
    assert {role_words(r).split(":")[0] for r in Role} == {
        "User",
        "Approver",
        "Administrator",
        "Auditor",
    }


def test_lists_and_detail_pages_say_the_facts(core: Pamcore, app: Flask, world: World) -> None:
    session_id = request_session(core, world.alice, "Linux Admin", "web01")
    client = signed_in(app, core, "erin")
    listing = client.get("/admin/users").get_data(as_text=True)
    row = listing[listing.index('href="/admin/user/carol"') :].split("</tr>")[0]
    assert "<td>Approver</td>" in row and "<td>Linux Admins</td>" in row and "Active" in row
    assert "<select" not in listing  # forms live on the detail and edit pages
    alice = client.get("/admin/user/alice").get_data(as_text=True)
    facts = alice[alice.index('id="user-facts"') :]
    assert "User: requests sessions." in facts and "<dd>None: cannot sign in" in facts
    table = alice[alice.index('id="user-sessions"') :]
    assert f'href="/sessions/{session_id}">{session_id}</a>' in table and "Linux Admin" in table
    assert 'data-confirm="Delete the user alice?"' in alice
    bob = client.get("/admin/user/bob").get_data(as_text=True)
    assert "bob has requested no session yet." in bob and 'id="user-sessions"' not in bob
    groups = client.get("/admin/groups").get_data(as_text=True)
    assert 'href="/admin/group/Linux%20Admins"' in groups and "carol, dave" in groups
    group = client.get("/admin/group/Linux%20Admins").get_data(as_text=True)
    facts = group[group.index('id="group-facts"') :]
    assert 'href="/admin/user/carol">carol</a>' in facts
    assert 'href="/admin/profile/Approval">Approval</a>' in facts and "No access policy." in facts


def test_the_edit_forms_change_the_user_and_return_to_their_page(core: Pamcore, app: Flask) -> None:
    client = signed_in(app, core, "erin")
    detail, edit = "/admin/user/alice", "/admin/user/alice/edit"
    form = client.get(edit).get_data(as_text=True)
    assert "<option selected>user</option>" in form and 'type="password"' in form
    went, said = post(
        app,
        client,
        "update",
        username="alice",
        display_name="Alice Liddell",
        email="alice@example.org",
        next=detail,
        here=edit,
    )
    assert (went, said) == (detail, "success: updated user alice")
    went, said = post(
        app, client, "role", username="alice", role="approver", next=detail, here=edit
    )
    assert (went, said) == (detail, "success: alice is now approver")
    page = client.get(detail).get_data(as_text=True)
    assert "<dd>Alice Liddell</dd>" in page and "<dd>alice@example.org</dd>" in page
    assert "Approver: requests sessions, and approves" in page
    went, said = post(
        app, client, "password", username="alice", password="N3w-passphrase-for-alice", next=detail
    )
    assert (went, said) == (detail, "success: password of alice set")
    page = client.get(detail).get_data(as_text=True)
    assert "<dd>Set.</dd>" in page and "N3w-passphrase-for-alice" not in page


def test_a_refused_change_says_why_and_changes_nothing(
    core: Pamcore, app: Flask, world: World
) -> None:
    request_session(core, world.alice, "Linux Admin", "web01")
    client = signed_in(app, core, "erin")
    before = user(core, "alice")
    detail, edit = "/admin/user/alice", "/admin/user/alice/edit"
    went, said = post(
        app,
        client,
        "update",
        username="alice",
        display_name="Someone Else",
        email="not-an-address",
        next=detail,
        here=edit,
    )
    assert went == edit and said.startswith("error: email: 'not-an-address' is not an e-mail")
    went, said = post(app, client, "delete", username="alice", next="/admin/users", here=detail)
    assert went == detail and "disable the account instead" in said
    assert user(core, "alice") == before
    went, said = post(app, client, "enable", username="erin", active="no", next="/admin/user/erin")
    assert said == "error: you cannot disable your own account" and user(core, "erin")["active"]
    group = "/admin/group/Linux%20Admins"
    went, said = post(
        app, client, "group_delete", group="Linux Admins", next="/admin/groups", here=group
    )
    assert went == group and "approves in connection profile 'Approval'" in said
    went, said = post(
        app,
        client,
        "group_update",
        group="Linux Admins",
        description="x",
        members=["carol", "nobody"],
        next=group,
        here=f"{group}/edit",
    )
    assert went == f"{group}/edit" and said.startswith("error:") and "nobody" in said
    assert members(core, "Linux Admins") == ["carol", "dave"]


def test_sign_in_actions_on_the_detail_page(core: Pamcore, app: Flask) -> None:
    detail = "/admin/user/bob"
    bob = signed_in(app, core, "bob")
    assert bob.get("/active").status_code == 200
    admin = signed_in(app, core, "erin")
    went, said = post(app, admin, "sign_out", username="bob", next=detail)
    assert (went, said) == (detail, "success: bob is signed out of every browser")
    assert "/login" in bob.get("/active").location
    with core.unit() as db:
        locked = directory.get_user(db, "bob")
        locked.failed_logins, locked.locked_until = 5, core.now() + dt.timedelta(minutes=15)
    page = admin.get(detail).get_data(as_text=True)
    assert "locked after 5 failed sign-ins until" in page and 'id="unlock"' in page
    went, said = post(app, admin, "unlock", username="bob", next=detail)
    assert (went, said) == (detail, "success: bob unlocked") and user(core, "bob")[
        "locked_until"
    ] is None
    went, said = post(app, admin, "enable", username="bob", active="no", next=detail)
    assert said == "success: bob disabled" and "Disabled: cannot sign in" in admin.get(
        detail
    ).get_data(as_text=True)
    went, said = post(app, admin, "member_add", username="bob", group="Linux Admins", next=detail)
    assert (went, said) == (detail, "success: added bob to Linux Admins")
    assert members(core, "Linux Admins") == ["bob", "carol", "dave"]


def test_an_admin_removes_a_lost_second_factor(core: Pamcore, app: Flask) -> None:
    detail = "/admin/user/bob"
    admin = signed_in(app, core, "erin")
    assert "Off: the password alone signs in." in admin.get(detail).get_data(as_text=True)
    went, said = post(app, admin, "totp_off", username="bob", next=detail)
    assert (went, said) == (detail, "error: totp: bob has no second factor")
    with core.unit() as db:
        bob = directory.get_user(db, "bob")
        enrolment = twofactor.start_enrolment(core, db, bob)
        code = pyotp.TOTP(enrolment.secret).at(core.now())
        twofactor.confirm_enrolment(core, db, bob, enrolment.secret_id, code)
    page = admin.get(detail).get_data(as_text=True)
    assert "On: a code from an authenticator app" in page and 'id="totp-off"' in page
    went, said = post(app, admin, "totp_off", username="bob", next=detail)
    assert (went, said) == (detail, "success: second factor of bob removed")
    with core.reader() as db:
        assert not twofactor.totp_enabled(directory.get_user(db, "bob"))


def test_new_user_and_group_from_their_forms(core: Pamcore, app: Flask) -> None:
    client = signed_in(app, core, "erin")
    went, said = post(
        app,
        client,
        "create",
        username="frank",
        role="auditor",
        email="f@example.org",
        here="/admin/users/new",
    )
    assert (went, said) == ("/admin/users", "success: created user frank")
    assert user(core, "frank")["role"] == Role.AUDITOR and not user(core, "frank")["has_password"]
    went, said = post(app, client, "create", username="Bad+Name", here="/admin/users/new")
    assert went == "/admin/users/new" and said.startswith("error: username: must not contain")
    form = client.get("/admin/groups/new").get_data(as_text=True)
    assert 'id="group-members" name="members" multiple class="picker"' in form
    went, said = post(
        app,
        client,
        "group_create",
        name="Auditors",
        description="Read the log",
        members=["frank", "carol"],
        next="/admin/groups",
        here="/admin/groups/new",
    )
    assert (went, said) == ("/admin/groups", "success: created group Auditors")
    assert members(core, "Auditors") == ["carol", "frank"]
    group = "/admin/group/Auditors"
    went, said = post(app, client, "member_remove", group="Auditors", username="carol", next=group)
    assert (went, said) == (group, "success: removed carol from Auditors")
    went, said = post(
        app, client, "group_delete", group="Auditors", next="/admin/groups", here=group
    )
    assert (went, said) == ("/admin/groups", "success: deleted group Auditors")


def test_the_member_picker_in_chromium(
    server: str,
    core: Pamcore,
    web_world: World,
    browser: Callable[[str], webdriver.Chrome],
    shots: Callable[[webdriver.Chrome, str], None],
) -> None:
    request_session(core, web_world.alice, "Linux Admin", "web01")
    request_session(core, web_world.alice, "Check out root", "db01")
    with core.unit() as db:
        directory.update_user(
            core, db, CONSOLE, "alice", display_name="Alice Liddell", email="alice@example.org"
        )
    erin = browser("erin")
    erin.set_window_size(1280, 900)
    sign_in(erin, server, "erin")
    erin.get(f"{server}/admin/users")
    assert "Linux Admins" in erin.find_element(By.ID, "user-table").text
    shots(erin, "users-list")
    erin.find_element(By.ID, "users-filter").send_keys("approver")
    rows = erin.find_elements(By.CSS_SELECTOR, "#user-table tbody tr")
    assert [r.text.split()[0] for r in rows if r.is_displayed()] == ["carol", "dave"]
    erin.get(f"{server}/admin/users")

    erin.find_element(By.LINK_TEXT, "alice").click()
    WebDriverWait(erin, 10).until(ec.presence_of_element_located((By.ID, "user-sessions")))
    assert "Check out root" in erin.find_element(By.ID, "user-sessions").text
    shots(erin, "user-detail")
    erin.find_element(By.ID, "edit-user").click()
    WebDriverWait(erin, 10).until(ec.presence_of_element_located((By.ID, "role-form")))
    shots(erin, "user-edit")

    # A group's edit form: the picker adds alice and drops carol; saving lands on its page.
    erin.get(f"{server}/admin/group/Linux%20Admins/edit")
    WebDriverWait(erin, 10).until(ec.presence_of_element_located((By.ID, "group-members-search")))
    assert not erin.find_element(By.ID, "group-members").is_displayed()
    pick(erin, "group-members", "ali")
    erin.find_element(By.CSS_SELECTOR, '#group-form .chip[data-value="carol"]').click()
    assert chosen(erin, "group-members") == ["alice", "dave"]
    shots(erin, "group-edit-picker")
    erin.find_element(By.ID, "save-group").click()
    assert flash(erin) == "updated group Linux Admins"
    assert "Members\nalice, dave" in erin.find_element(By.ID, "group-facts").text
    assert members(core, "Linux Admins") == ["alice", "dave"]
    shots(erin, "group-detail")

    # Deleting asks first; accepted, the group and then bob (no history) are gone.
    with core.unit() as db:
        directory.create_group(core, db, CONSOLE, "On call", members=["bob"])
    erin.get(f"{server}/admin/group/On%20call")
    assert delete_when_confirmed(erin) == "Delete the group On call?"
    assert flash(erin) == "deleted group On call"
    assert erin.current_url.endswith("/admin/groups")
    erin.get(f"{server}/admin/user/bob")
    assert delete_when_confirmed(erin) == "Delete the user bob?"
    assert flash(erin) == "deleted user bob"
    assert erin.current_url.endswith("/admin/users")
    with core.reader() as db:
        assert [g.name for g in directory.list_groups(db)] == ["Linux Admins"]
        assert "bob" not in [u.username for u in directory.list_users(db)]
