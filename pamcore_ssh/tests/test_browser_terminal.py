"""The browser terminal end to end: a ``websockets`` client plays the xterm.js page against
the real proxy and OpenSSH ``sshd``; the dashboard's token view through Flask's test client."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from itsdangerous import URLSafeSerializer
from pamcore_ssh.listener import ProxyListener
from sqlalchemy import create_engine
from ssh_peers import Sshd, run_listener
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from pamcore.clock import FrozenClock
from pamcore.core import Pamcore
from pamcore.model import ActivitySession, Base, LoginMode, Resource, User
from pamcore.plugins import build_plugin_host
from pamcore.services import scheduler
from pamcore.services.common import CONSOLE
from pamcore.services.sessions import SessionRequest, create_session, end_session
from pamcore.services.terminal_tokens import SALT, issue_terminal_token
from pamcore.testing import T0, LoopThread, audited, make_core
from pamcore.testing import builders as b
from pamcore.web.app import create_app

PASSWORD = "Browser-alice-pw-1"
ORIGIN = "http://localhost:8080"


@dataclass
class World:
    core: Pamcore
    clock: FrozenClock
    url: str
    session_id: int
    secret: str

    def token(self, session_id: int | None = None, username: str = "alice") -> str:
        with self.core.reader() as db:
            user = db.query(User).filter_by(username=username).one()
            return issue_terminal_token(
                self.core, db, user, session_id or self.session_id, "web01", "ssh", self.secret
            )

    def session(self) -> ActivitySession:
        with self.core.reader() as db:
            session = db.get(ActivitySession, self.session_id)
            assert session is not None
            db.expunge(session)
            return session


@pytest.fixture
def world(tmp_path: Path, sshd: Sshd) -> Iterator[World]:
    url = f"sqlite:///{tmp_path / 'terminal.db'}"
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    instance = tmp_path / "instance"
    instance.mkdir()
    secret = secrets.token_urlsafe(48)
    (instance / "web-secret.key").write_text(secret + "\n")
    clock = FrozenClock(T0)
    core = make_core(instance, url, clock, build_plugin_host(strict=True))
    with core.unit() as db:
        alice = b.make_user(db, "alice", password=PASSWORD)
        b.make_user(db, "bob", password=PASSWORD)
        web01 = b.make_resource(
            db, "web01", protocols={"ssh": sshd.port}, host_key=sshd.host_key_line
        )
        cred = b.make_credential(
            core, db, "web01 root", "root", private_key=sshd.client_key.read_text(), resource=web01
        )
        activity = b.make_activity(db, "Linux Admin", login_mode=LoginMode.MANAGED, credential=cred)
        profile = b.make_profile(
            db, "standard", max_duration_minutes=60, warning_minutes=5, extension_minutes=30
        )
        b.make_policy(db, "admins", profile, [activity], [web01], [alice])
        session_id = create_session(core, db, alice, SessionRequest("Linux Admin", ("web01",))).id
    assert session_id in scheduler.tick(core).activated
    loop = LoopThread()
    listener = ProxyListener(core, "127.0.0.1", 0, terminal_port=0)
    run_listener(loop, listener)
    assert listener.terminals is not None
    yield World(core, clock, f"ws://127.0.0.1:{listener.terminals.port}/", session_id, secret)
    loop.run(listener.stop())
    loop.close()
    core.dispose()


async def _open(
    world: World, token: str, cols: int = 100, rows: int = 30, origin: str | None = ORIGIN
) -> ClientConnection:
    """A page's socket after its first message; a page refused for its origin may already
    be closed when the message goes out (what it was told stays readable)."""
    ws = await connect(world.url, origin=origin)  # type: ignore[arg-type]
    with contextlib.suppress(ConnectionClosed):
        await ws.send(json.dumps({"type": "auth", "token": token, "cols": cols, "rows": rows}))
    return ws


async def _until(ws: ClientConnection, wanted: bytes, timeout: float = 10) -> bytes:
    """What the terminal showed up to and including ``wanted``."""
    seen = b""
    async with asyncio.timeout(timeout):
        while wanted not in seen:
            try:
                frame = await ws.recv()
            except ConnectionClosed:
                raise AssertionError(f"closed before {wanted!r}; saw {seen!r}") from None
            assert isinstance(frame, bytes), "terminal data comes in binary frames"
            seen += frame
    return seen


async def _refusal(world: World, token: str, origin: str | None = ORIGIN) -> str:
    """The one line a refused page shows, and the socket closed as a policy violation."""
    ws = await _open(world, token, origin=origin)
    seen = b""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            seen += await asyncio.wait_for(ws.recv(), 10)  # type: ignore[operator]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    text = seen.decode()
    assert text.startswith("pamcore: ") and text.count("\n") == 1, text
    return text.strip()


def test_a_token_opens_a_shell_once_with_output_and_resizes_relayed(world: World) -> None:
    token = world.token()

    async def go() -> None:
        ws = await _open(world, token)
        await ws.send(b"export PS1='PR''OMPT> '\r")
        await _until(ws, b"PROMPT> ")
        await ws.send(b"stty size; echo ok-$((6*7))\r")
        seen = await _until(ws, b"ok-42")
        assert b"30 100" in seen
        await ws.send(json.dumps({"type": "resize", "cols": 132, "rows": 40}))
        await ws.send(b"stty size\r")
        await _until(ws, b"40 132")
        await ws.send(b"exit\r")
        with pytest.raises(AssertionError, match="closed before"):
            await _until(ws, b"never")
        assert await _refusal(world, token) == (
            "pamcore: the terminal token was already used; open the terminal again from the "
            "dashboard"
        )

    asyncio.run(go())


def test_an_expired_token_or_one_for_another_session_is_refused(world: World) -> None:
    token = world.token()
    world.clock.now = T0 + dt.timedelta(seconds=61)
    assert "token expired" in asyncio.run(_refusal(world, token))
    with world.core.reader() as db:
        alice_id = db.query(User).filter_by(username="alice").one().id
        web01_id = db.query(Resource).filter_by(name="web01").one().id
    forged = URLSafeSerializer(world.secret, salt=SALT).dumps(
        {
            "u": alice_id,
            "s": world.session_id + 100,
            "r": web01_id,
            "p": "ssh",
            "x": int(world.clock.now.timestamp()) + 30,
            "n": "n1",
        }
    )
    refusal = asyncio.run(_refusal(world, forged))
    assert refusal == f"pamcore: session #{world.session_id + 100} does not give you web01"
    other_key = URLSafeSerializer("not the instance key", salt=SALT).dumps({"p": "ssh"})
    assert "token is not valid" in asyncio.run(_refusal(world, other_key))


def test_ctrl_x_in_the_warning_window_extends_and_the_end_closes_the_page(world: World) -> None:
    token = world.token()
    ends = world.session().ends_at
    assert ends is not None

    async def go() -> None:
        ws = await _open(world, token)
        await ws.send(b"export PS1='PR''OMPT> '\r")
        await _until(ws, b"PROMPT> ")
        world.clock.now = ends - dt.timedelta(minutes=4)
        await _until(ws, b"press Ctrl+X to extend")
        await ws.send(b"\x18")
        await _until(ws, b"session extended until")
        await asyncio.to_thread(_end, world)
        await _until(ws, b"the session was ended; closing the connection", timeout=3)
        with pytest.raises(AssertionError, match="closed before"):
            await _until(ws, b"never", timeout=3)

    asyncio.run(go())
    session = world.session()
    assert session.extensions_used == 1
    assert session.ends_at == ends + dt.timedelta(minutes=30)


def _end(world: World) -> None:
    with world.core.unit() as db:
        end_session(world.core, db, CONSOLE, world.session_id)


def test_pages_of_the_dashboards_addresses_open_and_others_are_told_why_not(
    world: World,
) -> None:
    """By default public_host and web_bind on web_port (localhost, 127.0.0.1, 8080) are the
    dashboard's; a page elsewhere is refused in its terminal, naming the setting, and
    audited, before its token is read (so the token stays unspent)."""
    token = world.token()

    async def shell_from(origin: str) -> None:
        ws = await _open(world, world.token(), origin=origin)
        await ws.send(b"echo from-$((40+2))\r")
        await _until(ws, b"from-42")
        await ws.close()

    asyncio.run(shell_from("http://127.0.0.1:8080"))
    asyncio.run(shell_from("http://LOCALHOST:8080"))
    refusal = asyncio.run(_refusal(world, token, origin="http://evil.example"))
    assert refusal == (
        "pamcore: pages from http://evil.example:80 may not open a terminal: add "
        '"http://evil.example:80" to web_origins under [pamcore] in pamcore.toml and restart '
        "pamcore"
    )
    assert "add" in asyncio.run(_refusal(world, token, origin="http://localhost:9999"))
    assert asyncio.run(_refusal(world, token, origin=None)) == (
        "pamcore: only the dashboard's terminal page may open a terminal (no Origin was sent)"
    )
    assert asyncio.run(_refusal(world, token, origin="null")) == (
        "pamcore: only the dashboard's terminal page may open a terminal, not a request from 'null'"
    )
    events = audited(world.core, "terminal.origin_refused")
    assert [e.details["origin"] for e in events] == [
        "http://evil.example",
        "http://localhost:9999",
        "",
        "null",
    ]
    assert all(e.details["protocol"] == "ssh" and e.actor == "-" for e in events)
    assert token not in str([e.details for e in events])
    # None of the refusals spent the token: it still opens the shell.
    world.core.config = world.core.config.with_overrides(web_origins=("http://evil.example:80",))

    async def refused_page_now_allowed() -> None:
        ws = await _open(world, token, origin="http://evil.example")
        await ws.send(b"echo listed-$((40+2))\r")
        await _until(ws, b"listed-42")
        await ws.close()

    asyncio.run(refused_page_now_allowed())
    assert "may not open" in asyncio.run(_refusal(world, world.token()))  # localhost: not listed


def test_the_dashboard_gives_a_token_only_to_the_requester_of_an_available_session(
    world: World,
) -> None:
    app = create_app(world.core, {"TESTING": True, "WTF_CSRF_ENABLED": False})
    page = f"/ssh/terminal/{world.session_id}/web01"

    def client(username: str):  # type: ignore[no-untyped-def]
        c = app.test_client()
        signed_in = c.post("/login", data={"username": username, "password": PASSWORD})
        assert signed_in.status_code == 303
        return c

    alice = client("alice")
    assert page.encode() in alice.get(f"/sessions/{world.session_id}/connect").data
    shown = alice.get(page)
    assert shown.status_code == 200 and b"data-token-url" in shown.data
    assert "connect-src 'self' ws://localhost:4423/" in shown.headers["Content-Security-Policy"]
    issued = alice.post(f"{page}/token")
    assert issued.status_code == 200 and issued.json["url"] == "ws://localhost:4423/"

    async def use() -> bytes:
        ws = await _open(world, issued.json["token"])
        await ws.send(b"echo via-$((40+2))\r")
        seen = await _until(ws, b"via-42")
        await ws.close()
        return seen

    assert b"via-42" in asyncio.run(use())
    assert client("bob").post(f"{page}/token").status_code == 404
    _end(world)
    refused = alice.post(f"{page}/token")
    assert refused.status_code == 403
    assert "once the session is Available" in refused.json["error"]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium from Debian's chromium and chromium-driver."""
    webdriver = pytest.importorskip("selenium.webdriver")
    chromium, chromedriver = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
    if not (chromium.exists() and chromedriver.exists()):
        pytest.skip("needs the Debian packages chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1000,700"):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium'}")
    driver = webdriver.Chrome(
        options=options, service=webdriver.ChromeService(executable_path=str(chromedriver))
    )
    yield driver
    driver.quit()


@pytest.mark.parametrize(
    ("host", "listed", "shown"),
    [
        ("localhost", None, "browser-42"),  # public_host
        ("127.0.0.1", None, "browser-42"),  # web_bind, the README's address
        ("127.0.0.1", "localhost", "may not open a terminal"),  # web_origins lists another
    ],
)
def test_the_terminal_page_in_headless_chromium(
    world: World, browser: Any, tmp_path: Path, host: str, listed: str | None, shown: str
) -> None:
    """The real page from each address the dashboard is served under: xterm.js fitted to
    the window, a prompt, a command's output; or, from an address not listed, the reason
    and the setting to change, in the terminal."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from pamcore.web.server import WebServer

    port = int(world.url.rsplit(":", 1)[1].strip("/"))
    world.core.config.plugin_settings.setdefault("ssh", {})["terminal_port"] = port
    web = WebServer(world.core, "127.0.0.1", 0, threads=4)
    web_port = int(web.start().rsplit(":", 1)[1])
    base = f"http://{host}:{web_port}"
    origins = (f"http://{listed}:{web_port}",) if listed else ()
    world.core.config = world.core.config.with_overrides(web_port=web_port, web_origins=origins)
    driver = browser
    try:
        driver.get(f"{base}/login")
        driver.find_element(By.ID, "username").send_keys("alice")
        driver.find_element(By.ID, "password").send_keys(PASSWORD)
        driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        # Navigate on only once the sign-in has landed, or the terminal page sends us back.
        WebDriverWait(driver, 15).until(lambda d: "/login" not in d.current_url)
        driver.get(f"{base}/ssh/terminal/{world.session_id}/web01")

        def shows(text: str) -> bool:
            """``text`` on the screen; the page's scripts are deferred, so look each time,
            and xterm wraps long lines anywhere, so whitespace does not count."""
            screen = driver.find_element(By.ID, "terminal").text
            return "".join(text.split()) in "".join(screen.split())

        if listed is None:
            WebDriverWait(driver, 15).until(lambda d: shows("#"))
            typing = driver.find_element(By.CSS_SELECTOR, "#terminal .xterm-helper-textarea")
            typing.send_keys("echo browser-$((6*7))\n")
        WebDriverWait(driver, 15).until(lambda d: shows(shown))
        if listed is not None:
            state = driver.find_element(By.ID, "term-state")
            WebDriverWait(driver, 10).until(lambda d: state.text == "refused")
            assert shows(f'pages from {base} may not open a terminal: add "{base}" to web_origins')
        folder = Path(os.environ.get("PAMCORE_SCREENSHOTS") or tmp_path)
        folder.mkdir(parents=True, exist_ok=True)
        name = "ssh-browser-terminal" + ("-refused" if listed else f"-{host}")
        driver.save_screenshot(str(folder / f"{name}.png"))
    finally:
        web.stop()
