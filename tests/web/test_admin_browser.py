"""The admin's connection profiles and access policies in headless Chromium: the short
list, a profile's rules in words, its edit form, the searchable picker adding an approver
tier and a policy user, and saving. Each step leaves a screenshot (in
$PAMCORE_SCREENSHOTS when set; the folder is printed)."""

from __future__ import annotations

from collections.abc import Callable

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from pamcore.core import Pamcore
from pamcore.services import profiles
from pamcore.services.common import CONSOLE
from tests.web.admin_pages import chosen, flash, pick
from tests.web.chromium import sign_in


def page_height(driver: webdriver.Chrome) -> int:
    return int(driver.execute_script("return document.documentElement.scrollHeight"))


def test_admin_profiles_and_policies(
    server: str,
    core: Pamcore,
    browser: Callable[[str], webdriver.Chrome],
    shots: Callable[[webdriver.Chrome, str], None],
) -> None:
    with core.unit() as db:
        profiles.create_profile(
            core, db, CONSOLE, "Night shift", profiles.ProfileChanges(description="Out of hours")
        )
        profiles.add_tier(core, db, CONSOLE, "Night shift", users=["carol"])
        profiles.add_tier(core, db, CONSOLE, "Night shift", groups=["Linux Admins"])
    erin = browser("erin")
    erin.set_window_size(1280, 900)
    sign_in(erin, server, "erin")

    # The list: one row per profile, its approval path as a sentence.
    erin.get(f"{server}/admin/profiles")
    table = erin.find_element(By.ID, "profile-table").text
    assert "Tier 1: carol, then tier 2: 1 of Linux Admins" in table
    assert "No approval: sessions are scheduled at once." in table
    assert page_height(erin) < 900  # three profiles fit the window
    shots(erin, "profiles-list")

    # A profile's rules in words.
    erin.find_element(By.LINK_TEXT, "Approval").click()
    WebDriverWait(erin, 10).until(ec.presence_of_element_located((By.ID, "profile-rules")))
    rules = erin.find_element(By.ID, "profile-rules").text
    assert "Tier 1: 1 of Linux Admins" in rules and "alice web" in rules
    shots(erin, "profile-detail")

    # Its edit form: the picker finds carol, the new tier reads as part of the sentence.
    erin.find_element(By.ID, "edit-profile").click()
    WebDriverWait(erin, 10).until(ec.presence_of_element_located((By.ID, "tier-users-search")))
    assert not erin.find_element(By.ID, "tier-users").is_displayed()  # replaced by the picker
    shots(erin, "profile-edit")
    pick(erin, "tier-users", "car")
    assert chosen(erin, "tier-users") == ["carol"]
    assert erin.find_element(By.CSS_SELECTOR, "#tier-form .chip").text.startswith("carol")
    shots(erin, "profile-picker")
    erin.find_element(By.ID, "add-tier").click()
    assert flash(erin) == "added approval tier 2 to Approval"
    assert "/admin/profile/Approval/edit" in erin.current_url  # back on the form
    sentence = erin.find_element(By.ID, "approval-sentence").text
    assert sentence == "Tier 1: 1 of Linux Admins, then tier 2: carol"
    shots(erin, "profile-tier-added")

    # Save a rule: back on the detail page, which says the new rule.
    duration = erin.find_element(By.ID, "prof-max_duration_minutes")
    duration.clear()
    duration.send_keys("90")
    erin.find_element(By.ID, "save-profile").click()
    assert flash(erin) == "updated connection profile Approval"
    assert "Sessions last up to 90 minutes" in erin.find_element(By.ID, "profile-rules").text
    shots(erin, "profile-saved")

    # Policies: the list says what each grants; the edit form's picker adds bob.
    erin.get(f"{server}/admin/policies")
    assert "alice may run Linux Admin on web01 or web02 under Approval." in (
        erin.find_element(By.ID, "policy-table").text
    )
    shots(erin, "policies-list")
    erin.find_element(By.LINK_TEXT, "alice web").click()
    WebDriverWait(erin, 10).until(ec.presence_of_element_located((By.ID, "edit-policy")))
    shots(erin, "policy-detail")
    erin.find_element(By.ID, "edit-policy").click()
    WebDriverWait(erin, 10).until(ec.presence_of_element_located((By.ID, "pol-users-search")))
    pick(erin, "pol-users", "bo")
    assert chosen(erin, "pol-users") == ["alice", "bob"]
    shots(erin, "policy-edit")
    erin.find_element(By.ID, "save-policy").click()
    assert flash(erin) == "updated access policy alice web"
    assert erin.find_element(By.ID, "policy-sentence").text == (
        "alice and bob may run Linux Admin on web01 or web02 under Approval."
    )
    shots(erin, "policy-saved")
