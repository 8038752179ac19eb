"""Admin pages: every page and every change for every role (admin allowed, others 403),
CSRF on every form, a fresh sign-in for changes, secrets never shown back."""

from __future__ import annotations

import html
import re

import pytest
from flask import Flask
from sqlalchemy import select

from pamcore.core import Pamcore
from pamcore.model import AuditEvent, LiveConnection
from pamcore.services import scheduler
from pamcore.services.sessions import SessionRequest, create_session
from pamcore.web.admin.changes import CHANGES
from tests.plugins import SettingsPlugin
from tests.web.helpers import request_session
from tests.web.roles import PEOPLE, build_app, csrf_token, signed_in
from tests.world import ROOT_PASSWORD, World, fresh

PAGES = [
    "/admin/",
    "/admin/users",
    "/admin/resources",
    "/admin/credentials",
    "/admin/activities",
    "/admin/profiles",
    "/admin/profiles/new",
    "/admin/profile/Approval",
    "/admin/profile/Approval/edit",
    "/admin/policies",
    "/admin/policies/new",
    "/admin/policy/alice%20web",
    "/admin/policy/alice%20web/edit",
    "/admin/connections",
    "/admin/vault",
    "/admin/plugins",
]


@pytest.fixture
def app(core: Pamcore, world: World) -> Flask:
    return build_app(core)


def test_pages_for_every_role(core: Pamcore, app: Flask) -> None:
    for role, name in PEOPLE.items():
        client = signed_in(app, core, name)
        for page in PAGES:
            status = client.get(page).status_code
            assert status == (200 if role == "admin" else 403), (role, page)
    assert app.test_client().get("/admin/static/admin.css").status_code == 200
    for page in PAGES:
        anonymous = app.test_client().get(page)
        assert anonymous.status_code in (302, 303) and "/login" in anonymous.location


def test_every_change_is_admin_only_and_needs_csrf(core: Pamcore, app: Flask) -> None:
    for (area, change), _run in CHANGES.items():
        url = f"/admin/{area}/{change}"
        for role, name in PEOPLE.items():
            client = signed_in(app, core, name)
            token = csrf_token(app, client)
            response = client.post(url, data={"csrf_token": token})
            if role == "admin":
                assert response.status_code == 303, url  # ran: a flash says what happened
            else:
                assert response.status_code == 403, (role, url)
        admin = signed_in(app, core, "erin")
        refused = admin.post(url, data={})
        assert refused.status_code == 400 and b"form expired" in refused.data, url
    assert signed_in(app, core, "erin").post(
        "/admin/users/nothing", data={"csrf_token": "x"}
    ).status_code in (400, 404)


def _post(app: Flask, client, url: str, **data):  # type: ignore[no-untyped-def]
    data["csrf_token"] = csrf_token(app, client)
    response = client.post(url, data=data, follow_redirects=True)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _flash(page: str) -> str:
    found = re.search(r'class="flash flash-(\w+)">([^<]*)<', page)
    assert found, page
    return f"{found.group(1)}: {html.unescape(found.group(2))}"


def test_changes_go_through_the_services(core: Pamcore, app: Flask) -> None:
    client = signed_in(app, core, "erin")
    post = lambda url, **data: _flash(_post(app, client, url, **data))  # noqa: E731
    assert post("/admin/users/create", username="frank", role="approver") == (
        "success: created user frank"
    )
    assert post("/admin/users/create", username="Bad+Name").startswith(
        "error: username: must not contain"
    )
    assert post("/admin/users/group_create", name="DBAs", members="frank") == (
        "success: created group DBAs"
    )
    assert post("/admin/users/role", username="erin", role="user").startswith(
        "error: you cannot remove your own administrator role"
    )
    assert post("/admin/resources/create", name="web03", address="10.0.0.3", protocols="ssh:22")
    page = client.get("/admin/resources").get_data(as_text=True)
    assert "web03" in page
    secret = "Brand-New-Secr3t!"
    assert (
        post(
            "/admin/credentials/create",
            name="web03 root",
            username="root",
            resource="web03",
            password=secret,
        )
        == "success: created credential web03 root"
    )
    assert post("/admin/credentials/password", credential="db01 root", password=secret).startswith(
        "success"
    )
    page = client.get("/admin/credentials").get_data(as_text=True)
    assert secret not in page and ROOT_PASSWORD not in page and "web03 root" in page
    assert post(
        "/admin/activities/action_add",
        activity="Linux Admin",
        phase="pre",
        action_type="audit-note",
        params="not json",
    ).startswith("error: params: not valid JSON")
    assert (
        post("/admin/profiles/create", name="Quick", max_duration_minutes="30", recording="on")
        == "success: created connection profile Quick"
    )
    assert (
        post("/admin/profiles/tier_add", profile="Quick", approvals_required="1", groups="DBAs")
        == "success: added approval tier 1 to Quick"
    )
    assert (
        post(
            "/admin/policies/create",
            name="frank web03",
            profile="Quick",
            users="frank",
            activities="Linux Admin",
            resources="web03",
        )
        == "success: created access policy frank web03"
    )
    assert post("/admin/policies/enable", policy="frank web03", enabled="no").endswith("disabled")
    with core.reader() as db:
        actions = [e.action for e in db.scalars(select(AuditEvent).order_by(AuditEvent.id))]
        details = str([e.details for e in db.scalars(select(AuditEvent))])
    for action in ("user.created", "group.created", "credential.created", "policy.disabled"):
        assert action in actions
    assert secret not in details


def test_plugin_settings_render_and_are_validated_by_the_plugin(core: Pamcore, app: Flask) -> None:
    name = core.plugins.register(SettingsPlugin(), name="testplug")
    try:
        client = signed_in(app, core, "erin")
        page = client.get("/admin/resource/web01/edit").get_data(as_text=True)
        assert "testplug.timeout" in page and "connect timeout" in page
        set_ = lambda value: _flash(  # noqa: E731
            _post(
                app,
                client,
                "/admin/resources/setting",
                resource="web01",
                setting="testplug.timeout",
                value=value,
            )
        )
        assert set_("soon") == "error: testplug.timeout: 'soon' is not a positive number of seconds"
        assert set_("30") == "success: testplug.timeout set on web01"
        assert 'value="30"' in client.get("/admin/resource/web01/edit").get_data(as_text=True)
        assert set_("") == "success: testplug.timeout removed from web01"
        unknown = _post(
            app, client, "/admin/resources/setting", resource="web01", setting="x.y", value="1"
        )
        assert _flash(unknown).startswith("error: setting: 'x.y' is not a known setting")
    finally:
        core.plugins.unregister(name)


def test_terminate_a_live_connection(core: Pamcore, app: Flask, world: World) -> None:
    from pamcore.services.connections import connection_opened

    with core.unit() as db:
        session = create_session(
            core, db, fresh(db, world.alice), SessionRequest("Check out root", ("db01",))
        )
        sid = session.id
    scheduler.tick(core)
    with core.unit() as db:
        opened = connection_opened(
            core, db, fresh(db, world.alice), sid, fresh(db, world.db01), "ssh", "10.1.1.1"
        )
        cid = opened.id
    client = signed_in(app, core, "erin")
    listed = client.get("/admin/connections").get_data(as_text=True)
    assert "10.1.1.1" in listed and core.node in listed  # the node that holds it
    page = _post(app, client, "/admin/connections/terminate", connection=str(cid), reason="x")
    assert _flash(page) == f"success: connection #{cid} will be closed by its proxy"
    with core.reader() as db:
        assert db.get(LiveConnection, cid).terminate_requested


def test_changes_need_a_recent_sign_in(core: Pamcore, app: Flask) -> None:
    client = signed_in(app, core, "erin")
    with client.session_transaction() as session:
        session["auth_at"] = 0
    response = client.post(
        "/admin/users/create", data={"username": "zed", "csrf_token": csrf_token(app, client)}
    )
    assert response.status_code == 303 and "reauth" in response.location


def test_plugins_page_lists_the_builtins(core: Pamcore, app: Flask) -> None:
    page = signed_in(app, core, "erin").get("/admin/plugins").get_data(as_text=True)
    assert "pamcore.defaults.approval" in page and "built-in" in page


def test_vault_page_lists_keys_and_what_cannot_be_decrypted(core: Pamcore, app: Flask) -> None:
    active = core.vault.active.key_id
    with core.unit() as db:
        lost = core.vault.store(db, "a secret whose key went missing", name="orphan")
        lost.key_id = "gone1234"
    page = signed_in(app, core, "erin").get("/admin/vault").get_data(as_text=True)
    assert f"<code>{active}</code>" in page and "active: encrypts new secrets" in page
    assert "Secrets that cannot be decrypted" in page
    assert "orphan" in page and "key &#39;gone1234&#39; is not loaded" in page
    assert "a secret whose key went missing" not in page


def test_profile_and_policy_pages_say_their_rules(core: Pamcore, app: Flask, world: World) -> None:
    client = signed_in(app, core, "erin")
    listing = client.get("/admin/profiles").get_data(as_text=True)
    assert "Tier 1: 1 of Linux Admins" in listing and "/admin/profile/Standard" in listing
    assert "<select" not in listing  # forms live on the edit pages, not the list
    detail = client.get("/admin/profile/Standard").get_data(as_text=True)
    assert "Up to 2 extensions of 30 minutes each." in detail and "db checkout" in detail
    policy = client.get("/admin/policy/alice%20web").get_data(as_text=True)
    assert "alice may run Linux Admin on web01 or web02 under Approval." in policy
    assert client.get("/admin/profile/Nothing").status_code == 404
    session_id = request_session(core, world.alice, "Linux Admin", "web01")
    page = signed_in(app, core, "alice").get(f"/sessions/{session_id}").get_data(as_text=True)
    assert "<dt>Approval</dt><dd>Tier 1: 1 of Linux Admins</dd>" in page


def test_a_change_returns_to_the_admin_page_it_names_and_nowhere_else(
    core: Pamcore, app: Flask
) -> None:
    client = signed_in(app, core, "erin")
    edit = "/admin/profile/Standard/edit"

    def post(**data: str) -> str:
        data["csrf_token"] = csrf_token(app, client)
        return client.post("/admin/profiles/tier_add", data=data).location

    assert post(profile="Standard", users="carol", next=edit) == edit
    assert post(profile="Standard", users="nobody", next="/admin/x", here=edit) == edit
    assert post(profile="Standard", users="carol", next="https://evil.example/admin/") == (
        "/admin/profiles"
    )
    assert post(profile="Standard", users="carol", next="//evil.example/admin/") == (
        "/admin/profiles"
    )
    updated = client.post(
        "/admin/policies/update",
        data={
            "csrf_token": csrf_token(app, client),
            "policy": "db checkout",
            "users": ["alice"],
            "activities": "Check out root",
            "resources": "db01",
            "profile": "Approval",
        },
        follow_redirects=True,
    ).get_data(as_text=True)
    assert 'flash-success">updated access policy db checkout<' in updated
    page = client.get("/admin/policy/db%20checkout").get_data(as_text=True)
    assert "alice may run Check out root on db01 under Approval." in page
