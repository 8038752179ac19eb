"""The admin's resource pages: the short list, a resource in words (address, platform,
protocols, host key pin, plugin settings, credentials without their secrets, the policies
reaching it), the edit form and its changes (protocols ticked with their ports, the pin,
settings, the policies picker), refusals that leave everything as it was, and the same in
headless Chromium. The installed plugins are loaded, so the settings are the real ones."""

from __future__ import annotations

from collections.abc import Callable

import asyncssh
import pytest
from flask import Flask
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from pamcore.core import Pamcore
from pamcore.plugins import PluginHost
from pamcore.services import inventory, policies
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
from tests.world import ROOT_PASSWORD, World

PAGES = [
    "/admin/resources",
    "/admin/resources/new",
    "/admin/resource/db01",
    "/admin/resource/db01/edit",
]


@pytest.fixture
def plugin_host(installed_plugin_host: PluginHost) -> PluginHost:
    return installed_plugin_host


@pytest.fixture
def app(core: Pamcore, world: World) -> Flask:
    return build_app(core)


def test_pages_are_for_admins_only(core: Pamcore, app: Flask) -> None:
    changes = ["update", "policies", "setting"]
    only_admins(app, core, PAGES, "resources", changes, resource="web02", description="x")
    with core.reader() as db:
        assert inventory.get_resource(db, "web02").description == ""  # no protocol: refused
    assert signed_in(app, core, "erin").get("/admin/resource/nothing").status_code == 404


def test_list_and_detail_say_where_a_resource_is_and_who_reaches_it(
    core: Pamcore, app: Flask
) -> None:
    client = signed_in(app, core, "erin")
    assert "<select" not in client.get("/admin/resources").get_data(as_text=True)
    listing = text(client, "/admin/resources")
    assert "db01 127.0.0.1 linux ssh:22, tcp:5432 not pinned db checkout" in listing
    assert "web01 127.0.0.1 linux ssh:22 not pinned alice web" in listing

    detail = text(client, "/admin/resource/db01")
    assert (
        "Address 127.0.0.1 Platform Linux Protocols ssh on port 22 and tcp on port 5432."
        " Host key Not pinned, and a first key is not trusted: connections are refused"
    ) in detail
    assert "Plugin settings All at the plugins' defaults." in detail
    assert (
        "Credentials db01 root : the account root, managed by pamcore; a password is in" in detail
    )
    assert (
        "Reached by db checkout : alice and bob may run Check out root on db01 under Standard."
    ) in detail
    assert ROOT_PASSWORD not in client.get("/admin/resource/db01").get_data(as_text=True)
    assert ROOT_PASSWORD not in client.get("/admin/resource/db01/edit").get_data(as_text=True)

    edit = client.get("/admin/resource/db01/edit").get_data(as_text=True)
    assert '<input type="checkbox" name="protocols" value="tcp" checked> tcp' in edit
    assert '<input type="checkbox" name="protocols" value="rdp" > rdp' in edit
    assert 'name="port.tcp" type="number" min="1" max="65535" value="5432"' in edit
    assert 'name="port.rdp" type="number" min="1" max="65535" value="3389"' in edit
    assert "<code>rdp.domain</code>" in edit
    assert "<option selected>db checkout</option>" in edit


def test_an_edit_takes_effect_and_returns_to_the_detail_page(core: Pamcore, app: Flask) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    line = key.export_public_key().decode().strip()
    client = signed_in(app, core, "erin")
    landed, said = send(
        app,
        client,
        "resources",
        "update",
        resource="web01",
        address="web01.example.test",
        platform="linux",
        description="Front web server",
        protocols=["ssh", "rdp"],
        **{"port.ssh": "2222", "port.rdp": "3389", "port.tcp": "80"},
        host_key=line,
        next="/admin/resource/web01",
        here="/admin/resource/web01/edit",
    )
    assert (landed, said) == ("/admin/resource/web01", "success: updated resource web01")
    detail = text(client, "/admin/resource/web01")
    assert "Front web server Address web01.example.test" in detail
    assert "Protocols rdp on port 3389 and ssh on port 2222." in detail
    assert f"Host key Pinned to ssh-ed25519 {key.get_fingerprint('sha256')}; any other" in detail
    assert key.get_fingerprint("sha256").startswith("SHA256:")

    # A setting, then a new resource trusting its first key.
    _, said = send(
        app,
        client,
        "resources",
        "setting",
        resource="web01",
        setting="rdp.domain",
        value="CORP",
        next="/admin/resource/web01/edit",
    )
    assert said == "success: rdp.domain set on web01"
    assert "Plugin settings rdp.domain is CORP (" in text(client, "/admin/resource/web01")
    assert "The others at the plugins' defaults." in text(client, "/admin/resource/web01")
    landed, said = send(
        app,
        client,
        "resources",
        "create",
        name="web09",
        address="10.0.0.9",
        platform="linux",
        protocols=["ssh", "vnc:5901"],
        **{"port.ssh": "22"},
        trust_on_first_use="on",
    )
    assert (landed, said) == ("/admin/resources", "success: created resource web09")
    detail = text(client, "/admin/resource/web09")
    assert "Protocols ssh on port 22 and vnc on port 5901." in detail
    assert "Host key Not pinned yet: the first host key (SSH) or certificate (RDP)" in detail
    assert "Reached by No access policy yet" in detail


def test_refused_changes_say_why_and_change_nothing(core: Pamcore, app: Flask) -> None:
    client = signed_in(app, core, "erin")
    fields = {"resource": "db01", "platform": "linux", "next": "/admin/resource/db01"}
    landed, said = send(
        app,
        client,
        "resources",
        "update",
        address="bad address!",
        protocols="ssh",
        here="/admin/resource/db01/edit",
        **fields,
    )
    assert said == "error: address: 'bad address!' is not a host name or IP address"
    assert landed == "/admin/resource/db01/edit"
    _, said = send(app, client, "resources", "update", address="10.9.9.9", here="/x", **fields)
    assert said == "error: protocols: give at least one, e.g. ssh:22"
    _, said = send(
        app, client, "resources", "update", protocols="ssh", host_key="not a key", **fields
    )
    assert said.startswith("error: host_key: give an OpenSSH public-key line")
    _, said = send(app, client, "resources", "policies", resource="db01", policies=[])
    assert said == "error: policies: 'db checkout': grant on at least one resource"
    _, said = send(
        app,
        client,
        "resources",
        "setting",
        resource="db01",
        setting="rdp.security",
        value="carrier pigeon",
    )
    assert said.startswith("error: rdp.security: ")
    with core.reader() as db:
        db01 = inventory.get_resource(db, "db01")
        assert (db01.address, db01.host_key, db01.settings) == ("127.0.0.1", None, {})
        assert [(p.name, p.port) for p in db01.protocols] == [("ssh", 22), ("tcp", 5432)]
        assert [r.name for r in policies.get_policy(db, "db checkout").resources] == ["db01"]


def test_the_policies_picker_adds_and_removes_a_resource(core: Pamcore, app: Flask) -> None:
    client = signed_in(app, core, "erin")
    _, said = send(
        app,
        client,
        "resources",
        "policies",
        resource="web01",
        policies=["db checkout", "alice web"],
    )
    assert said == "success: updated access policies db checkout"
    assert "alice and bob may run Check out root on db01 or web01 under Standard." in (
        text(client, "/admin/resource/web01")
    )
    _, said = send(app, client, "resources", "policies", resource="web01", policies="alice web")
    assert said == "success: updated access policies db checkout"
    with core.reader() as db:
        assert [r.name for r in policies.get_policy(db, "db checkout").resources] == ["db01"]


def test_resources_in_chromium(
    server: str,
    core: Pamcore,
    browser: Callable[[str], webdriver.Chrome],
    shots: Callable[[webdriver.Chrome, str], None],
) -> None:
    with core.unit() as db:
        inventory.update_resource(
            core,
            db,
            CONSOLE,
            "db01",
            inventory.ResourceChanges(description="Billing database", trust_on_first_use=True),
        )
    erin = browser("erin")
    erin.set_window_size(1280, 900)
    sign_in(erin, server, "erin")

    erin.get(f"{server}/admin/resources")
    assert "ssh:22, tcp:5432" in erin.find_element(By.ID, "resource-table").text
    shots(erin, "resources-list")
    erin.find_element(By.ID, "resources-filter").send_keys("alice web")
    rows = erin.find_elements(By.CSS_SELECTOR, "#resource-table tbody tr")
    assert [r.find_element(By.TAG_NAME, "a").text for r in rows if r.is_displayed()] == [
        "web01",
        "web02",
    ]

    # The edit form: tick rdp (its well-known port is filled in), pick a policy, save each.
    erin.get(f"{server}/admin/resource/db01")
    follow(erin, "edit-resource")
    erin.find_element(By.CSS_SELECTOR, 'input[name="protocols"][value="rdp"]').click()
    shots(erin, "resource-edit")
    follow(erin, "save-resource")
    assert flash(erin) == "updated resource db01"
    assert "rdp on port 3389, ssh on port 22 and tcp on port 5432." in (
        erin.find_element(By.ID, "resource-facts").text
    )
    follow(erin, "edit-resource")
    domain = erin.find_element(By.ID, "set-rdp.domain")
    domain.send_keys("CORP")
    domain.submit()
    WebDriverWait(erin, 10).until(ec.staleness_of(domain))
    assert flash(erin) == "rdp.domain set on db01"
    assert not erin.find_element(By.ID, "res-policies").is_displayed()
    pick(erin, "res-policies", "web")
    assert chosen(erin, "res-policies") == ["alice web", "db checkout"]
    erin.execute_script("document.getElementById('policies-form').scrollIntoView()")
    shots(erin, "resource-edit-picker")
    follow(erin, "save-policies")
    assert flash(erin) == "updated access policies alice web"
    reached = erin.find_element(By.ID, "reached-by").text
    assert "alice may run Linux Admin on db01, web01 or web02 under Approval." in reached
    assert "rdp.domain is CORP" in erin.find_element(By.ID, "resource-settings").text
    assert ROOT_PASSWORD not in erin.page_source
    shots(erin, "resource-detail")

    # Delete asks first; accepted, the resource is gone.
    with core.unit() as db:
        inventory.create_resource(core, db, CONSOLE, "web09", "10.0.0.9")
    erin.get(f"{server}/admin/resource/web09")
    assert delete_when_confirmed(erin) == "Delete the resource web09?"
    assert flash(erin) == "deleted resource web09"
    assert erin.current_url.endswith("/admin/resources")
    with core.reader() as db:
        assert [r.name for r in inventory.list_resources(db)] == ["db01", "web01", "web02"]
