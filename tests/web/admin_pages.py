"""Shared by the admin page tests of activities and resources: a page as a person reads it,
a change posted as its form sends it, the pages and changes only an admin may use, and
following a link or button, or a confirmed delete, in Chromium."""

from __future__ import annotations

import html
import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from pamcore.core import Pamcore
from tests.web.roles import PEOPLE, csrf_token, signed_in


def text(client: FlaskClient, url: str) -> str:
    """The page as a person reads it: tags dropped, entities decoded, spaces collapsed."""
    response = client.get(url)
    assert response.status_code == 200, url
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))).split())


def send(app: Flask, client: FlaskClient, area: str, change: str, **data: Any) -> tuple[str, str]:
    """Post a change as its form does; (where it landed, the flash it shows)."""
    data["csrf_token"] = csrf_token(app, client)
    response = client.post(f"/admin/{area}/{change}", data=data, follow_redirects=True)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    found = re.search(r'class="flash flash-(\w+)">([^<]*)<', page)
    assert found, page
    return response.request.path, f"{found.group(1)}: {html.unescape(found.group(2))}"


def only_admins(
    app: Flask, core: Pamcore, pages: list[str], area: str, changes: list[str], **data: str
) -> None:
    """Every role opens ``pages`` and posts ``data`` to each of ``changes``: an admin's
    request runs (a flash says how it went), anyone else's is refused with 403."""
    for role, name in PEOPLE.items():
        client = signed_in(app, core, name)
        for page in pages:
            assert client.get(page).status_code == (200 if role == "admin" else 403), (role, page)
        token = csrf_token(app, client)
        for change in changes:
            response = client.post(f"/admin/{area}/{change}", data={"csrf_token": token, **data})
            assert response.status_code == (303 if role == "admin" else 403), (role, change)


def flash(driver: webdriver.Chrome) -> str:
    WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".flash")))
    return driver.find_element(By.CSS_SELECTOR, ".flash").text


def pick(driver: webdriver.Chrome, picker: str, typed: str) -> None:
    """Type into a picker's search box and press Enter to add the first match."""
    search = driver.find_element(By.ID, f"{picker}-search")
    search.send_keys(typed)
    search.send_keys(Keys.ENTER)


def chosen(driver: webdriver.Chrome, picker: str) -> list[str]:
    """What the form will send: the hidden native select's selected options."""
    return driver.execute_script(
        "return Array.from(document.getElementById(arguments[0]).selectedOptions)"
        ".map(o => o.value)",
        picker,
    )


def follow(driver: webdriver.Chrome, element_id: str) -> None:
    """Click a link or submit button and wait until the next page replaced this one."""
    element = driver.find_element(By.ID, element_id)
    element.click()
    WebDriverWait(driver, 10).until(ec.staleness_of(element))


def delete_when_confirmed(driver: webdriver.Chrome) -> str:
    """Press the detail page's Delete button: dismissing the question keeps the page as it
    is, accepting it sends the form. Returns the question asked."""
    page = driver.current_url
    delete = driver.find_element(By.CSS_SELECTOR, "form[data-confirm] button.danger")
    delete.click()
    question = WebDriverWait(driver, 5).until(ec.alert_is_present())
    asked = question.text
    question.dismiss()
    assert driver.current_url == page
    delete.click()
    WebDriverWait(driver, 5).until(ec.alert_is_present()).accept()
    WebDriverWait(driver, 10).until(ec.staleness_of(delete))
    return asked
