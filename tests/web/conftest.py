"""Web fixtures: the dashboard built on the test core, users with passwords, sign-in, and
the dashboard served by cheroot to headless Chromium."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from selenium import webdriver

from pamcore.core import Pamcore
from pamcore.model import ConnectionProfile, Role, User
from pamcore.passwords import hash_password
from pamcore.testing import builders as b
from pamcore.web.app import create_app
from pamcore.web.server import WebServer
from tests.web.chromium import chromium_missing, start_chromium
from tests.web.helpers import PASSWORD, Login, sign_in
from tests.world import World


@pytest.fixture
def web_world(core: Pamcore, world: World) -> World:
    """The shared world plus ivy the auditor, every user able to sign in with
    :data:`PASSWORD`."""
    with core.unit() as db:
        b.make_user(db, "ivy", Role.AUDITOR)
        hashed = hash_password(PASSWORD)
        for user in db.query(User):
            user.password_hash = hashed
    return world


@pytest.fixture
def app(core: Pamcore, web_world: World) -> Flask:
    return create_app(core, {"TESTING": True, "WTF_CSRF_ENABLED": False})


@pytest.fixture
def csrf_app(core: Pamcore, web_world: World) -> Flask:
    """CSRF as in production: every form post needs the token of its page."""
    return create_app(core, {"TESTING": True})


@pytest.fixture
def login(app: Flask) -> Login:
    """A fresh client signed in as the given user."""
    return lambda username: sign_in(app.test_client(), username)


@pytest.fixture
def server(core: Pamcore, web_world: World) -> Iterator[str]:
    """The dashboard served by cheroot on a free port (its URL), for a real browser."""
    if core.engine.dialect.name != "sqlite":
        pytest.skip("the browser tests run once, on SQLite")
    with core.unit() as db:
        profile = db.get(ConnectionProfile, web_world.approval.id)
        profile.allow_view_password = True
        profile.password_view_seconds = 5
        profile.max_duration_minutes = 60
    web = WebServer(core, "127.0.0.1", 0, threads=8)
    url = web.start()
    yield url
    web.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Callable[[str], webdriver.Chrome]]:
    """Start a headless Chromium per person (marks the test ``browser``)."""
    if missing := chromium_missing():
        pytest.skip(missing)
    drivers: list[webdriver.Chrome] = []

    def start(name: str) -> webdriver.Chrome:
        drivers.append(start_chromium(tmp_path / f"profile-{name}"))
        return drivers[-1]

    yield start
    for driver in drivers:
        driver.quit()


@pytest.fixture
def shots(tmp_path: Path) -> Callable[[webdriver.Chrome, str], None]:
    """Save numbered screenshots (in $PAMCORE_SCREENSHOTS when set)."""
    folder = Path(os.environ.get("PAMCORE_SCREENSHOTS") or tmp_path / "screens")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    print(f"screenshots in {folder}")
    count = iter(range(1, 100))

    def shot(driver: webdriver.Chrome, name: str) -> None:
        driver.save_screenshot(str(folder / f"{next(count):02d}-{name}.png"))

    return shot
