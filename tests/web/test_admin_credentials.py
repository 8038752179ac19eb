"""The admin's credential pages: a list, a detail page saying what is stored (never the
secret) and who uses it, an edit form and a new form; the changes they send go through the
inventory service and come back to the page that sent them."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from pamcore.core import Pamcore
from pamcore.presenters import credential_record
from pamcore.services import inventory
from pamcore.services.common import CONSOLE
from tests.web.admin_pages import (
    chosen,
    delete_when_confirmed,
    flash,
    only_admins,
    pick,
    send,
    text,
)
from tests.web.chromium import sign_in
from tests.web.roles import build_app, signed_in
from tests.world import ROOT_PASSWORD, World

PAGES = [
    "/admin/credentials",
    "/admin/credentials/new",
    "/admin/credential/db01%20root",
    "/admin/credential/db01%20root/edit",
]
NEW_SECRET = "Replaced-Secr3t-for-db01"
KEY = "\n".join(
    (
        "-----BEGIN OPENSSH PRIVATE KEY-----",
        "b3BlbnNzaC1rZXktdjEAAAAA",
        "-----END OPENSSH PRIVATE KEY-----",
    )
)


@pytest.fixture
def app(core: Pamcore, world: World) -> Flask:
    return build_app(core)


def post(app: Flask, client: FlaskClient, change: str, **data: str | list[str]) -> tuple[str, str]:
    """Send a credentials change as its form does: the page it landed on (as links name it) and
    the message shown there."""
    landed, said = send(app, client, "credentials", change, **data)
    return quote(landed), said


def record(core: Pamcore, name: str) -> dict[str, object]:
    with core.reader() as db:
        return credential_record(inventory.get_credential(db, name))


def test_credential_pages_are_for_admins_only(core: Pamcore, app: Flask) -> None:
    only_admins(app, core, PAGES, "credentials", ["update", "password", "key"], credential="x")
    assert signed_in(app, core, "erin").get("/admin/credential/nothing").status_code == 404


def test_list_and_detail_say_what_is_stored_and_who_uses_it(core: Pamcore, app: Flask) -> None:
    client = signed_in(app, core, "erin")
    listing = client.get("/admin/credentials").get_data(as_text=True)
    assert 'href="/admin/credential/db01%20root">db01 root</a>' in listing
    assert 'href="/admin/resource/db01">db01</a>' in listing
    assert 'href="/admin/activity/Check%20out%20root">Check out root</a>' in listing
    assert "db01 root (managed) root db01 password Check out root" in text(client, PAGES[0])
    assert 'type="password"' not in listing and "<textarea" not in listing  # forms: other pages
    detail = client.get("/admin/credential/db01%20root").get_data(as_text=True)
    words = text(client, PAGES[2])
    assert "Account root Resource On db01" in words  # db01 links to its page
    assert (
        "Managed Yes: pamcore rotates the password after sessions. Stored A password, no"
        " private key. Neither is ever shown here. Last replaced Never since it was stored."
        " Used by Check out root"
    ) in words
    assert 'data-confirm="Delete the credential db01 root' in detail
    assert re.findall(r'<input id="cred-pw" type="password" name="password"[^>]*>', detail)
    for page in PAGES:
        assert ROOT_PASSWORD not in client.get(page).get_data(as_text=True), page


def test_the_edit_form_changes_the_credential_and_returns_to_its_page(
    core: Pamcore, app: Flask
) -> None:
    client = signed_in(app, core, "erin")
    edit = client.get("/admin/credential/db01%20root/edit").get_data(as_text=True)
    assert "<option selected>db01</option>" in edit and 'value="root"' in edit
    assert 'type="password"' not in edit  # secrets are replaced on the detail page only
    went, said = post(
        app,
        client,
        "update",
        credential="db01 root",
        username="postgres",
        resource="",
        description="The database superuser",
        managed="on",
        next="/admin/credential/db01%20root",
        here="/admin/credential/db01%20root/edit",
    )
    assert (went, said) == (
        "/admin/credential/db01%20root",
        "success: updated credential db01 root",
    )
    detail = client.get(went).get_data(as_text=True)
    assert "<dd>postgres</dd>" in detail and "The database superuser" in detail
    assert "Any resource: a domain account." in detail and "Yes: pamcore rotates" in detail


def test_a_refused_change_says_why_and_changes_nothing(core: Pamcore, app: Flask) -> None:
    client = signed_in(app, core, "erin")
    before = record(core, "db01 root")
    edit = "/admin/credential/db01%20root/edit"
    went, said = post(
        app,
        client,
        "update",
        credential="db01 root",
        username="two words",
        resource="db01",
        description="changed",
        next="/admin/credential/db01%20root",
        here=edit,
    )
    assert went == edit and said == "error: username: the account name: 1-128 characters, no spaces"
    assert record(core, "db01 root") == before
    detail = "/admin/credential/db01%20root"
    went, said = post(app, client, "delete", credential="db01 root", here=detail)
    assert went == detail and "used by activity 'Check out root'" in said
    went, said = post(app, client, "key", credential="db01 root", private_key="x", next=detail)
    assert went == detail and said.startswith("error: private_key: not a private key")
    assert record(core, "db01 root") == before


def test_secrets_are_replaced_write_only(core: Pamcore, app: Flask) -> None:
    client = signed_in(app, core, "erin")
    detail = "/admin/credential/db01%20root"
    went, said = post(
        app, client, "password", credential="db01 root", password=NEW_SECRET, next=detail
    )
    assert (went, said) == (detail, "success: password of db01 root replaced")
    went, said = post(app, client, "key", credential="db01 root", private_key=KEY, next=detail)
    assert (went, said) == (detail, "success: private key of db01 root replaced")
    page = client.get(detail).get_data(as_text=True)
    assert "A password and a private key." in page and "Never since it was stored" not in page
    assert NEW_SECRET not in page and "b3BlbnNzaC1rZXktdjEAAAAA" not in page
    with core.reader() as db:
        credential = inventory.get_credential(db, "db01 root")
        assert core.vault.reveal(credential.password_secret) == NEW_SECRET


def test_a_new_credential_from_the_new_form(core: Pamcore, app: Flask) -> None:
    client = signed_in(app, core, "erin")
    form = client.get("/admin/credentials/new").get_data(as_text=True)
    assert 'name="password" type="password"' in form and "<option>web01</option>" in form
    went, said = post(
        app,
        client,
        "create",
        name="web01 deploy",
        username="deploy",
        resource="web01",
        private_key=KEY,
        here="/admin/credentials/new",
    )
    assert (went, said) == ("/admin/credentials", "success: created credential web01 deploy")
    assert record(core, "web01 deploy")["has_private_key"]
    went, said = post(
        app, client, "create", name="empty", username="x", here="/admin/credentials/new"
    )
    assert went == "/admin/credentials/new"
    assert said == "error: password: give a password, a private key, or both"


def test_the_resource_picker_in_chromium(
    server: str,
    core: Pamcore,
    browser: Callable[[str], webdriver.Chrome],
    shots: Callable[[webdriver.Chrome, str], None],
) -> None:
    with core.unit() as db:
        inventory.create_credential(
            core, db, CONSOLE, "web01 deploy", "deploy", resource="web01", private_key=KEY
        )
        inventory.create_credential(
            core, db, CONSOLE, "ad backup", "svc-backup", password="x", managed=True
        )
    erin = browser("erin")
    erin.set_window_size(1280, 900)
    sign_in(erin, server, "erin")
    erin.get(f"{server}/admin/credentials")
    assert "svc-backup" in erin.find_element(By.ID, "credential-table").text
    shots(erin, "credentials-list")

    erin.find_element(By.LINK_TEXT, "db01 root").click()
    WebDriverWait(erin, 10).until(ec.presence_of_element_located((By.ID, "credential-facts")))
    assert "Check out root" in erin.find_element(By.ID, "credential-facts").text
    shots(erin, "credential-detail")

    # The edit form: the resource is a single-choice picker; choosing web02 replaces db01.
    erin.find_element(By.ID, "edit-credential").click()
    WebDriverWait(erin, 10).until(ec.presence_of_element_located((By.ID, "cred-res-search")))
    assert not erin.find_element(By.ID, "cred-res").is_displayed()
    assert chosen(erin, "cred-res") == ["db01"]
    pick(erin, "cred-res", "web02")
    assert chosen(erin, "cred-res") == ["web02"]
    shots(erin, "credential-edit")
    erin.find_element(By.ID, "save-credential").click()
    assert flash(erin) == "updated credential db01 root"
    assert "On web02." in erin.find_element(By.ID, "credential-facts").text

    # Removing the chosen resource makes it a domain account.
    erin.find_element(By.ID, "edit-credential").click()
    WebDriverWait(erin, 10).until(ec.presence_of_element_located((By.ID, "cred-res-search")))
    erin.find_element(By.CSS_SELECTOR, "#credential-form .chip").click()
    assert chosen(erin, "cred-res") == [""]  # the option that stands for none
    erin.find_element(By.ID, "save-credential").click()
    assert flash(erin) == "updated credential db01 root"
    assert "Any resource: a domain account." in erin.find_element(By.ID, "credential-facts").text
    assert record(core, "db01 root")["resource"] is None

    # Delete asks first; accepted, the credential and its secrets are gone.
    erin.get(f"{server}/admin/credential/web01%20deploy")
    asked = delete_when_confirmed(erin)
    assert asked == "Delete the credential web01 deploy and its stored secrets?"
    assert flash(erin) == "deleted credential web01 deploy"
    assert erin.current_url.endswith("/admin/credentials")
    with core.reader() as db:
        assert [c.name for c in inventory.list_credentials(db)] == ["ad backup", "db01 root"]
