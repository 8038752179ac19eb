"""The recordings player in headless Chromium: the vendored asciinema-player starts under
the dashboard's Content-Security-Policy and shows the recorded terminal."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from pamcore.core import Pamcore
from pamcore.services.recordings import register_recording
from pamcore.services.sessions import SessionRequest, create_session
from tests.web.chromium import sign_in
from tests.world import World, fresh

CAST = (
    json.dumps({"version": 2, "width": 60, "height": 10})
    + '\n[0.2, "o", "root@db01:~# uptime\\r\\n"]\n[0.4, "o", "up 42 days\\r\\n"]\n'
)


def test_recording_plays_in_the_browser(
    core: Pamcore,
    web_world: World,
    server: str,
    browser: Callable[[str], webdriver.Chrome],
    shots: Callable[[webdriver.Chrome, str], None],
    tmp_path: Path,
) -> None:
    path = tmp_path / "db01.cast"
    path.write_text(CAST)
    with core.unit() as db:
        session = create_session(
            core, db, fresh(db, web_world.alice), SessionRequest("Check out root", ("db01",))
        )
        digest = hashlib.sha256(CAST.encode()).hexdigest()
        recording = register_recording(
            core,
            db,
            session.id,
            web_world.db01.id,
            "ssh",
            path,
            digest,
            len(CAST),
            core.now(),
            core.now(),
        ).id
    driver = browser("erin")
    sign_in(driver, server, "erin")
    driver.get(f"{server}/recordings")
    shots(driver, "recordings")
    driver.find_element(By.LINK_TEXT, "Play").click()
    WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".ap-player")))
    driver.find_element(By.CSS_SELECTOR, ".ap-player").click()  # start playback
    WebDriverWait(driver, 10).until(
        lambda d: "up 42 days" in d.find_element(By.CSS_SELECTOR, ".player").text
    )
    shots(driver, f"recording-{recording}-played")
    logs = driver.get_log("browser")
    errors = [e for e in logs if e["level"] == "SEVERE" and "favicon" not in e["message"]]
    assert errors == []
    for page in ("admin/resources", "admin/profiles", "audit"):
        driver.get(f"{server}/{page}")
        shots(driver, page.replace("/", "-"))
