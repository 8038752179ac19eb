"""The dashboard's story in headless Chromium (Debian's chromium + chromium-driver, never a
downloaded browser) against the real app served by cheroot: sign in -> wizard -> Waiting
for Approval -> approved in a second browser -> Available without reload -> password shown
then hidden -> Extend near the end -> End, and Cancel of another request. Each step leaves
a screenshot (in $PAMCORE_SCREENSHOTS when set)."""

from __future__ import annotations

from collections.abc import Callable

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from pamcore.clock import FrozenClock
from pamcore.core import Pamcore
from pamcore.services import scheduler
from tests.web.chromium import sign_in
from tests.web.helpers import request_session
from tests.world import World


def next_step(driver: webdriver.Chrome, expect: str) -> None:
    """Click Next and wait for the next step's field ``expect``."""
    driver.find_element(By.ID, "next").click()
    WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.ID, expect)))


def row_status(driver: webdriver.Chrome, session_id: int) -> str:
    """The row's status; "" while htmx swaps the polled table under the read (the row found
    may be replaced before its attribute is read), so a wait simply looks again."""
    try:
        row = driver.find_element(By.ID, f"session-{session_id}")
        return row.get_attribute("data-status") or ""
    except StaleElementReferenceException:
        return ""


def click(driver, element_id: str) -> None:  # type: ignore[no-untyped-def]
    """Click a button in the polled table, which htmx may swap under the click."""
    WebDriverWait(driver, 10, ignored_exceptions=[StaleElementReferenceException]).until(
        lambda d: d.find_element(By.ID, element_id).click() or True
    )


def test_browser_tour(
    server: str,
    core: Pamcore,
    clock: FrozenClock,
    web_world: World,
    browser: Callable[[str], webdriver.Chrome],
    shots: Callable[[webdriver.Chrome, str], None],
) -> None:
    alice = browser("alice")
    sign_in(alice, server, "alice")
    shots(alice, "active-empty")

    # The wizard, step by step.
    alice.find_element(By.LINK_TEXT, "+ Create Session").click()
    WebDriverWait(alice, 10).until(ec.presence_of_element_located((By.ID, "activity-filter")))
    alice.find_element(By.ID, "activity-filter").send_keys("linux")
    Select(alice.find_element(By.ID, "activity")).select_by_value("Linux Admin")
    shots(alice, "wizard-activity")
    next_step(alice, "resource-table")
    alice.find_element(By.CSS_SELECTOR, "input[value=web01]").click()
    alice.find_element(By.ID, "view-selections").click()
    assert "web01" in alice.find_element(By.ID, "selected-list").text
    shots(alice, "wizard-resources")
    next_step(alice, "notes")
    alice.find_element(By.ID, "notes").send_keys("patch openssl")
    shots(alice, "wizard-notes")
    next_step(alice, "date")
    shots(alice, "wizard-schedule")
    next_step(alice, "finish")
    assert "patch openssl" in alice.find_element(By.CSS_SELECTOR, "dl.facts").text
    shots(alice, "wizard-review")
    alice.find_element(By.ID, "finish").click()

    WebDriverWait(alice, 10).until(ec.presence_of_element_located((By.ID, "session-1")))
    WebDriverWait(alice, 10).until(lambda d: row_status(d, 1) == "waiting_for_approval")
    shots(alice, "waiting-for-approval")

    # carol approves in her own browser.
    carol = browser("carol")
    sign_in(carol, server, "carol")
    carol.find_element(By.LINK_TEXT, "Approvals").click()
    WebDriverWait(carol, 10).until(ec.presence_of_element_located((By.ID, "comment-1")))
    carol.find_element(By.ID, "comment-1").send_keys("go ahead")
    shots(carol, "approver-queue")
    carol.find_element(By.ID, "approve-1").click()
    # The click starts a navigation: wait for the next page's message, not the old page.
    WebDriverWait(carol, 10).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".flash")))
    assert "approved" in carol.find_element(By.CSS_SELECTOR, ".flash").text
    scheduler.tick(core)

    # alice's row turns Available by itself (htmx polling), no reload.
    marker = alice.execute_script("window.notReloaded = true; return window.notReloaded;")
    assert marker is True
    WebDriverWait(alice, 15).until(lambda d: row_status(d, 1) == "available")
    assert alice.execute_script("return window.notReloaded === true;")
    shots(alice, "available-without-reload")

    # View Password: shown with a countdown, hidden when the window ends.
    click(alice, "view-1")
    WebDriverWait(alice, 10).until(lambda d: len(d.find_element(By.ID, "secret").text) >= 12)
    secret = alice.find_element(By.ID, "secret")
    assert secret.text not in alice.current_url
    shots(alice, "password-shown")
    WebDriverWait(alice, 12).until(lambda d: d.find_element(By.ID, "reveal-over").is_displayed())
    assert alice.find_element(By.ID, "secret").get_attribute("textContent") == ""
    shots(alice, "password-hidden")

    # Near the end the Extend button appears, with the new end and what is left.
    for _ in range(2):  # alice clicks now and then: her sign-in is not idle
        clock.advance(minutes=28)
        alice.get(f"{server}/active")
    extend = alice.find_element(By.ID, "extend-1")
    assert "left after" in extend.text
    shots(alice, "extend-offered")
    extend.click()
    WebDriverWait(alice, 10).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".flash")))
    assert "extended until" in alice.find_element(By.CSS_SELECTOR, ".flash").text
    shots(alice, "extended")

    # Cancel another request, then end this one.
    other = request_session(core, web_world.alice, "Linux Admin", "web02")
    alice.get(f"{server}/active")
    click(alice, f"cancel-{other}")
    alice.switch_to.alert.accept()
    WebDriverWait(alice, 10).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".flash")))
    assert "canceled" in alice.find_element(By.CSS_SELECTOR, ".flash").text
    shots(alice, "canceled")
    click(alice, "end-1")
    alice.switch_to.alert.accept()
    WebDriverWait(alice, 10).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".flash")))
    alice.find_element(By.LINK_TEXT, "History").click()
    WebDriverWait(alice, 10).until(lambda d: "/history" in d.current_url)
    WebDriverWait(alice, 10).until(ec.presence_of_element_located((By.ID, "session-1")))
    WebDriverWait(alice, 10).until(
        lambda d: row_status(d, 1) == "ended" and row_status(d, other) == "canceled"
    )
    shots(alice, "history")
