"""The admin's activity pages: the short list, an activity in words (its login, its pre- and
post-session actions in order, the policies granting it), the edit form and its changes
(fields, actions added from a type's own parameter fields, the policies picker), refusals
that leave everything as it was, and the same in headless Chromium. The installed plugins
are loaded, so the action types are the real ones."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from pamcore.core import Pamcore
from pamcore.model import ActionPhase, AuditEvent, LoginMode
from pamcore.plugins import PluginHost
from pamcore.services import activities, policies
from pamcore.services.common import CONSOLE
from tests.web.admin_pages import (
    chosen,
    delete_when_confirmed,
    flash,
    follow,
    only_admins,
    pick,
    send,
    text,
)
from tests.web.chromium import sign_in
from tests.web.roles import build_app, signed_in
from tests.world import World

PAGES = [
    "/admin/activities",
    "/admin/activities/new",
    "/admin/activity/Linux%20Admin",
    "/admin/activity/Linux%20Admin/edit",
    "/admin/activity/Linux%20Admin/edit?action_type=linux-create-account",
]


@pytest.fixture
def plugin_host(installed_plugin_host: PluginHost) -> PluginHost:
    return installed_plugin_host


@pytest.fixture
def app(core: Pamcore, world: World) -> Flask:
    return build_app(core)


def test_pages_are_for_admins_only(core: Pamcore, app: Flask) -> None:
    changes = ["update", "policies", "action_add"]
    only_admins(app, core, PAGES, "activities", changes, activity="Linux Admin", description="x")
    with core.reader() as db:
        assert activities.get_activity(db, "Linux Admin").description == "x"  # erin's only
    assert signed_in(app, core, "erin").get("/admin/activity/Nothing").status_code == 404


def test_list_and_detail_say_what_an_activity_does(core: Pamcore, app: Flask) -> None:
    client = signed_in(app, core, "erin")
    listing = client.get("/admin/activities").get_data(as_text=True)
    assert "<select" not in listing  # forms live on the edit pages, not the list
    words = text(client, "/admin/activities")
    assert (
        "Linux Admin A new account for each session, named from the template {user}-{random}."
        " 1 before, 1 after alice web"
    ) in words
    assert "Check out root As root, with the vaulted credential db01 root. none db checkout" in (
        words
    )

    detail = text(client, "/admin/activity/Linux%20Admin")
    assert "Kind Work on resources: the user connects through pamcore" in detail
    assert (
        "Before each session audit-note : Write a note to the audit log for each resource of"
        ' the session, with message "create account".'
    ) in detail
    assert "After each session audit-note : Write a note" in detail
    assert 'with message "remove account".' in detail
    assert (
        "Granted by alice web : alice may run Linux Admin on web01 or web02 under Approval."
    ) in detail
    checkout = text(client, "/admin/activity/Check%20out%20root")
    assert "Credential checkout: the user is given the credential's password" in checkout
    assert "Before each session Nothing. After each session Nothing." in checkout

    edit = client.get("/admin/activity/Check%20out%20root/edit").get_data(as_text=True)
    assert "<option selected>credential</option>" in edit
    assert 'id="act-cred" name="credential" class="picker"' in edit
    assert "<option selected>db01 root</option>" in edit
    assert 'id="act-policies" name="policies" multiple class="picker"' in edit
    assert "<option selected>db checkout</option>" in edit


def test_an_edit_takes_effect_and_returns_to_the_detail_page(core: Pamcore, app: Flask) -> None:
    client = signed_in(app, core, "erin")
    landed, said = send(
        app,
        client,
        "activities",
        "update",
        activity="Check out root",
        description="Break-glass root on db01",
        kind="resource",
        login_mode="managed",
        login_template="",
        credential="db01 root",
        next="/admin/activity/Check%20out%20root",
        here="/admin/activity/Check%20out%20root/edit",
    )
    assert (landed, said) == (
        "/admin/activity/Check out root",
        "success: updated activity Check out root",
    )
    detail = text(client, "/admin/activity/Check%20out%20root")
    assert "Break-glass root on db01" in detail and "Kind Work on resources" in detail

    # A new one, from the new-activity form (no credential: an ephemeral login).
    landed, said = send(
        app, client, "activities", "create", name="Night fix", description="", credential=""
    )
    assert (landed, said) == ("/admin/activities", "success: created activity Night fix")
    assert "Night fix A new account for each session" in text(client, "/admin/activities")


def test_actions_are_added_from_their_parameter_fields_and_removed(
    core: Pamcore, app: Flask
) -> None:
    client = signed_in(app, core, "erin")
    edit = "/admin/activity/Linux%20Admin/edit"
    form = client.get(f"{edit}?action_type=linux-create-account").get_data(as_text=True)
    assert 'id="param-service_credential" name="param.service_credential" class="picker"' in form
    assert "Name of the credential the action logs in with (root, or sudo NOPASSWD)." in form
    assert 'name="param.sudo_group"' in form and "<option>db01 root</option>" in form

    landed, said = send(
        app,
        client,
        "activities",
        "action_add",
        activity="Linux Admin",
        action_type="linux-create-account",
        phase="pre",
        position="1",
        **{"param.service_credential": "db01 root", "param.sudo_group": "wheel"},
        next=edit,
    )
    assert said == "success: added pre-session action linux-create-account"
    assert landed == "/admin/activity/Linux Admin/edit"
    detail = text(client, "/admin/activity/Linux%20Admin")
    assert (
        "Before each session linux-create-account : Create the session's ephemeral account with"
        ' its password, with service credential "db01 root" and sudo group "wheel".'
        " audit-note : Write a note"
    ) in detail
    with core.reader() as db:
        steps = activities.get_activity(db, "Linux Admin").actions_for(ActionPhase.PRE)
        assert [(s.position, s.action_type) for s in steps] == [
            (1, "linux-create-account"),
            (2, "audit-note"),
        ]
        assert steps[0].params == {"service_credential": "db01 root", "sudo_group": "wheel"}

    _, said = send(
        app,
        client,
        "activities",
        "action_remove",
        activity="Linux Admin",
        phase="pre",
        position="2",
        next=edit,
    )
    assert said == "success: removed pre-session action 2 of Linux Admin"
    assert 'with message "create account"' not in text(client, "/admin/activity/Linux%20Admin")


def test_refused_changes_say_why_and_change_nothing(core: Pamcore, app: Flask) -> None:
    client = signed_in(app, core, "erin")
    edit = "/admin/activity/Linux%20Admin/edit?action_type=linux-create-account"
    landed, said = send(
        app,
        client,
        "activities",
        "action_add",
        activity="Linux Admin",
        action_type="linux-create-account",
        phase="pre",
        **{"param.sudo_group": "wheel"},
        next="/admin/activity/Linux%20Admin/edit",
        here=edit,
    )
    assert said.startswith(
        "error: params: 'linux-create-account': parameter 'service_credential' is missing"
    )
    assert landed == "/admin/activity/Linux Admin/edit"  # the type's form, still open
    landed, said = send(
        app,
        client,
        "activities",
        "update",
        activity="Check out root",
        description="changed",
        kind="credential",
        login_mode="ephemeral",
        credential="db01 root",
        next="/admin/activity/Check%20out%20root",
        here="/admin/activity/Check%20out%20root/edit",
    )
    assert (
        said
        == "error: login_mode: a credential-based activity logs in with its credential: managed"
    )
    assert landed == "/admin/activity/Check out root/edit"
    _, said = send(app, client, "activities", "policies", activity="Linux Admin", policies=[])
    assert said == "error: policies: 'alice web': grant at least one activity"
    with core.reader() as db:
        checkout = activities.get_activity(db, "Check out root")
        assert (checkout.description, checkout.login_mode) == ("", LoginMode.MANAGED)
        assert len(activities.get_activity(db, "Linux Admin").actions) == 2
        assert [a.name for a in policies.get_policy(db, "alice web").activities] == ["Linux Admin"]


def test_the_policies_picker_grants_and_withdraws(core: Pamcore, app: Flask) -> None:
    client = signed_in(app, core, "erin")
    landed, said = send(
        app,
        client,
        "activities",
        "policies",
        activity="Check out root",
        policies=["db checkout", "alice web"],
        next="/admin/activity/Check%20out%20root",
    )
    assert (landed, said) == (
        "/admin/activity/Check out root",
        "success: updated access policies alice web",
    )
    assert "alice may run Check out root or Linux Admin on web01 or web02 under Approval." in (
        text(client, "/admin/activity/Check%20out%20root")
    )
    _, said = send(
        app, client, "activities", "policies", activity="Check out root", policies="db checkout"
    )
    assert said == "success: updated access policies alice web"
    _, said = send(
        app, client, "activities", "policies", activity="Check out root", policies="db checkout"
    )
    assert said == "success: the access policies naming Check out root are unchanged"
    with core.reader() as db:
        updated = [e.target for e in db.query(AuditEvent).filter_by(action="policy.updated")]
    assert updated == ["alice web", "alice web"]


def test_activities_in_chromium(
    server: str,
    core: Pamcore,
    browser: Callable[[str], webdriver.Chrome],
    shots: Callable[[webdriver.Chrome, str], None],
) -> None:
    erin = browser("erin")
    erin.set_window_size(1280, 900)
    sign_in(erin, server, "erin")

    erin.get(f"{server}/admin/activities")
    assert "1 before, 1 after" in erin.find_element(By.ID, "activity-table").text
    shots(erin, "activities-list")
    erin.find_element(By.ID, "activities-filter").send_keys("vaulted")
    rows = erin.find_elements(By.CSS_SELECTOR, "#activity-table tbody tr")
    assert [r.find_element(By.TAG_NAME, "a").text for r in rows if r.is_displayed()] == [
        "Check out root"
    ]

    # The edit form: pick a type, fill its parameters (the credential from the list).
    erin.get(f"{server}/admin/activity/Linux%20Admin")
    follow(erin, "edit-activity")
    Select(erin.find_element(By.ID, "act-type")).select_by_value("linux-create-account")
    follow(erin, "choose-action-type")
    erin.find_element(By.ID, "act-position").send_keys("1")
    pick(erin, "param-service_credential", "db01")
    assert chosen(erin, "param-service_credential") == ["db01 root"]
    erin.find_element(By.ID, "param-sudo_group").send_keys("wheel")
    erin.execute_script("document.getElementById('add-action').scrollIntoView()")
    shots(erin, "activity-edit")
    follow(erin, "add-action-button")
    assert flash(erin) == "added pre-session action linux-create-account"
    assert "linux-create-account" in erin.find_element(By.ID, "pre-steps").text

    # The policies picker: "db" finds db checkout; saving lands on the detail page.
    assert not erin.find_element(By.ID, "act-policies").is_displayed()
    pick(erin, "act-policies", "db")
    assert chosen(erin, "act-policies") == ["alice web", "db checkout"]
    erin.execute_script("document.getElementById('policies-form').scrollIntoView()")
    shots(erin, "activity-edit-picker")
    follow(erin, "save-policies")
    assert flash(erin) == "updated access policies db checkout"
    granted = erin.find_element(By.ID, "granted-by").text
    assert "alice and bob may run Check out root or Linux Admin on db01 under Standard." in granted
    assert erin.current_url.endswith("/admin/activity/Linux%20Admin")
    pre = erin.find_element(By.ID, "pre-actions").text
    assert pre.startswith("linux-create-account: Create the session's ephemeral account")
    shots(erin, "activity-detail")

    # Delete asks first: dismissed, nothing happens; accepted, the activity is gone.
    with core.unit() as db:
        activities.create_activity(core, db, CONSOLE, "Night fix", activities.ActivityChanges())
    erin.get(f"{server}/admin/activity/Night%20fix")
    assert delete_when_confirmed(erin) == "Delete the activity Night fix?"
    assert flash(erin) == "deleted activity Night fix"
    assert erin.current_url.endswith("/admin/activities")
    with core.reader() as db:
        assert [a.name for a in activities.list_activities(db)] == ["Check out root", "Linux Admin"]
