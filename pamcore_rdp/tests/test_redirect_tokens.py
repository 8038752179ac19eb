"""Redirect tokens (single use, 30 s, bound to the client address) and the ``.rdp``
file's routing token: made per download by the dashboard, sent verbatim by a real xfreerdp
in its X.224 Connection Request, redeemed once by the listener's side."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask.testing import FlaskClient
from pamcore_rdp.certs import proxy_certificate
from pamcore_rdp.pdu.x224 import encode_connection_request, parse_connection_request
from pamcore_rdp.plugin import DEFAULT_PORT, client_launch
from pamcore_rdp.proxy.gate import FileTokens
from pamcore_rdp.proxy.redirect_tokens import (
    REDIRECT_SECONDS,
    RedirectPass,
    RedirectRefused,
    RedirectTokens,
)
from pamcore_rdp.rdpfile import (
    FILE_TOKEN_SECONDS,
    ROUTING_PREFIX,
    file_token,
    issue_file_token,
    rdp_file,
)
from rdp_display import start_xfreerdp

from pamcore.clock import FrozenClock
from pamcore.config import CONFIG_FILE, load_config
from pamcore.core import Pamcore
from pamcore.errors import AuthenticationFailed
from pamcore.model import (
    Activity,
    ActivitySession,
    LoginMode,
    Platform,
    Resource,
    ResourceProtocol,
    User,
)
from pamcore.plugins import PluginHost
from pamcore.services import scheduler
from pamcore.services.common import CONSOLE
from pamcore.services.profiles import ProfileChanges, update_profile
from pamcore.services.sessions import SessionRequest, create_session
from pamcore.testing import builders as b
from pamcore.web.app import create_app

PASSWORD = "Alice-rdp-file-1"


# -- redirect tokens ---------------------------------------------------------------------


def test_a_redirect_token_lets_its_client_in_once(core: Pamcore) -> None:
    tokens = RedirectTokens(core)
    token = tokens.issue(7, 42, "win01", "10.1.2.3")
    assert len(token) == 32 and token.isascii()
    # the dual-stack form of the same address
    assert tokens.redeem(token, "::ffff:10.1.2.3") == RedirectPass(7, 42, "win01")
    with pytest.raises(RedirectRefused, match="^this redirect token was already used; connect"):
        tokens.redeem(token, "10.1.2.3")


def test_a_redirect_token_expires_after_30_seconds(core: Pamcore, clock: FrozenClock) -> None:
    tokens = RedirectTokens(core)
    on_time, late = (tokens.issue(7, 42, "win01", "10.1.2.3") for _ in range(2))
    clock.advance(seconds=REDIRECT_SECONDS)
    assert tokens.redeem(on_time, "10.1.2.3").session_id == 42
    clock.advance(seconds=0.1)
    with pytest.raises(RedirectRefused, match=r"expired \(it is good for 30 s\)"):
        tokens.redeem(late, "10.1.2.3")


def test_a_redirect_token_from_another_address_is_refused_and_burnt(core: Pamcore) -> None:
    tokens = RedirectTokens(core)
    token = tokens.issue(7, 42, "win01", "10.1.2.3")
    with pytest.raises(RedirectRefused, match="issued to another client address") as refused:
        tokens.redeem(token, "10.9.9.9")
    assert token not in str(refused.value)
    with pytest.raises(RedirectRefused, match="already used"):
        tokens.redeem(token, "10.1.2.3")
    with pytest.raises(RedirectRefused, match="not known here"):
        tokens.redeem(secrets.token_urlsafe(24), "10.1.2.3")
    assert isinstance(refused.value, AuthenticationFailed)  # the listener's PamError path


def test_a_redirect_token_issued_by_one_node_is_redeemed_once_by_another(
    core: Pamcore, other_node: Pamcore
) -> None:
    """Phase B may reach another proxy node (or this one, restarted): the token is held
    in the database, and spent there for every node."""
    token = RedirectTokens(core).issue(7, 42, "win01", "10.1.2.3")
    assert RedirectTokens(other_node).redeem(token, "10.1.2.3") == RedirectPass(7, 42, "win01")
    with pytest.raises(RedirectRefused, match="already used"):
        RedirectTokens(core).redeem(token, "10.1.2.3")


# -- the .rdp file and its routing token -------------------------------------------------


@pytest.fixture
def plugin_host(installed_plugin_host: PluginHost) -> PluginHost:
    return installed_plugin_host


@dataclass
class World:
    core: Pamcore
    clock: FrozenClock
    session_id: int
    secret: str

    def token(self) -> str:
        with self.core.reader() as db:
            alice = db.query(User).filter_by(username="alice").one()
            return issue_file_token(self.core, db, alice, self.session_id, "win 01", self.secret)

    def redeem(self, token: str, tokens: FileTokens) -> tuple[int, int, str]:
        redeemed = tokens.redeem(token)
        return redeemed.user_id, redeemed.session_id, redeemed.resource_name


@pytest.fixture
def world(core: Pamcore, clock: FrozenClock) -> Iterator[World]:
    secret = secrets.token_urlsafe(48)
    assert core.config.secret_key_path is not None
    core.config.secret_key_path.write_text(secret + "\n")
    with core.unit() as db:
        alice = b.make_user(db, "alice", password=PASSWORD)
        b.make_user(db, "bob", password=PASSWORD)
        win01 = b.make_resource(db, "win 01", protocols={"rdp": 3389}, platform=Platform.WINDOWS)
        cred = b.make_credential(core, db, "admin", "Administrator", "Vaulted-1", resource=win01)
        activity = b.make_activity(
            db, "Windows Admin", login_mode=LoginMode.MANAGED, credential=cred
        )
        b.make_policy(db, "admins", b.make_profile(db, "standard"), [activity], [win01], [alice])
        sid = create_session(core, db, alice, SessionRequest("Windows Admin", ("win 01",))).id
    assert sid in scheduler.tick(core).activated
    yield World(core, clock, sid, secret)


def test_the_file_token_is_redeemed_once_within_ten_minutes(world: World) -> None:
    tokens = FileTokens(world.core)
    token, late = world.token(), world.token()
    assert world.redeem(token, tokens) == (1, world.session_id, "win 01")
    with pytest.raises(AuthenticationFailed, match="already used; download the .rdp file again"):
        world.redeem(token, tokens)
    world.clock.advance(seconds=FILE_TOKEN_SECONDS + 1)
    with pytest.raises(AuthenticationFailed, match="^the routing token of this .rdp file expired"):
        world.redeem(late, tokens)
    with pytest.raises(AuthenticationFailed, match="is not valid"):
        world.redeem(token[:-2] + "xx", tokens)


def test_the_routing_line_fits_a_connection_request(world: World) -> None:
    """X.224's length indicator is one byte (MS-RDPBCGR 2.2.1.1): the whole request,
    token line included, must stay within 254 bytes."""
    line = ROUTING_PREFIX + world.token()
    frame = encode_connection_request(routing_token=line)
    assert frame[4] <= 254
    assert parse_connection_request(frame).routing_token == line
    assert file_token(line) == line[len(ROUTING_PREFIX) :]
    assert file_token(secrets.token_urlsafe(24)) is None  # a redirect token, not a file


def signed_in(core: Pamcore, username: str) -> FlaskClient:
    client = create_app(core, {"TESTING": True, "WTF_CSRF_ENABLED": False}).test_client()
    assert client.post("/login", data={"username": username, "password": PASSWORD}).status_code
    return client


def test_the_dashboard_download_carries_a_fresh_token(world: World) -> None:
    alice = signed_in(world.core, "alice")
    url = f"/rdp/file/{world.session_id}/win%2001"
    assert url.encode() in alice.get(f"/sessions/{world.session_id}/connect").data
    first, second = alice.get(url), alice.get(url)
    assert first.status_code == 200 and first.mimetype == "application/x-rdp"
    assert first.headers["Content-Disposition"] == 'attachment; filename="win-01.rdp"'
    assert first.headers["Cache-Control"] == "no-store"
    lines = first.data.decode().split("\r\n")
    assert lines[:3] == [
        "full address:s:localhost:4489",
        "username:s:alice+Windows-Admin+win-01",
        "enablecredsspsupport:i:0",
    ]
    routing = [x for x in lines if x.startswith("loadbalanceinfo:s:")]
    assert len(routing) == 1 and first.data != second.data  # one token per download
    token = file_token(routing[0].removeprefix("loadbalanceinfo:s:"))
    assert token is not None
    assert world.redeem(token, FileTokens(world.core)) == (1, world.session_id, "win 01")
    assert signed_in(world.core, "bob").get(url).status_code == 404


def test_an_instance_on_other_ports_names_them_everywhere(world: World) -> None:
    """``[pamcore.proxy_ports]`` is where the proxies listen, so the Connection page's
    commands and the downloaded ``.rdp`` file name those ports, never the defaults."""
    instance = world.core.config.instance_path
    (instance / CONFIG_FILE).write_text("[pamcore.proxy_ports]\nrdp = 53389\nssh = 52222\n")
    world.core.config = load_config(
        instance,
        database_url=world.core.config.database_url,
        master_key_path=world.core.config.master_key_path,
    )
    with world.core.unit() as db:
        win01 = db.query(Resource).filter_by(name="win 01").one()
        win01.protocols.append(ResourceProtocol(name="ssh", port=22))
    alice = signed_in(world.core, "alice")
    page = alice.get(f"/sessions/{world.session_id}/connect").data.decode()
    assert "/v:localhost:53389" in page
    assert "ssh -p 52222 alice+Windows-Admin+win-01@localhost" in page
    assert "4489" not in page and "4422" not in page
    lines = alice.get(f"/rdp/file/{world.session_id}/win%2001").data.decode().split("\r\n")
    assert lines[0] == "full address:s:localhost:53389"


def test_the_rdp_file_shares_the_clipboard_only_when_the_profile_says_so(world: World) -> None:
    alice = signed_in(world.core, "alice")
    url = f"/rdp/file/{world.session_id}/win%2001"

    def clipboard_lines() -> list[str]:
        answer = alice.get(url)
        assert answer.status_code == 200
        return [x for x in answer.data.decode().split("\r\n") if "clipboard" in x]

    assert clipboard_lines() == ["redirectclipboard:i:0"]  # off unless chosen
    with world.core.unit() as db:
        changes = ProfileChanges(clipboard_redirection=True)
        update_profile(world.core, db, CONSOLE, "standard", changes)
    assert clipboard_lines() == ["redirectclipboard:i:1"]
    session = ActivitySession(activity=Activity(name="Windows Admin"))
    launch = client_launch(
        session, Resource(name="win 01"), User(username="bob"), "pam.example", DEFAULT_PORT
    )
    assert b"redirectclipboard:i:0\r\n" in launch.file[2]  # type: ignore[index]


def test_client_launch_points_the_download_at_the_dashboard_route() -> None:
    session = ActivitySession(id=5, activity=Activity(name="Windows Admin"))
    info = client_launch(
        session, Resource(name="win 01"), User(username="bob"), "pam.example", DEFAULT_PORT
    )
    assert info.file_url == "/rdp/file/5/win%2001"
    assert b"loadbalanceinfo" not in info.file[2]  # type: ignore[index]  # no token without the dashboard
    assert f"pam.example:{DEFAULT_PORT}" in info.command


def test_xfreerdp_sends_the_files_token_verbatim(xvfb_display: str, world: World, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A real xfreerdp opens a generated file against a capture server (a fake RDP server:
    it reads the Connection Request and hangs up) and the token in it redeems."""
    captured: asyncio.Queue[bytes] = asyncio.Queue()

    async def capture() -> bytes:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            header = await reader.readexactly(4)
            captured.put_nowait(header + await reader.readexactly(int.from_bytes(header[2:]) - 4))
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        path = tmp_path / "win01.rdp"
        path.write_bytes(rdp_file("127.0.0.1", "alice+Windows-Admin+win-01", port, world.token()))
        client = start_xfreerdp([str(path)], xvfb_display)
        try:
            return await asyncio.wait_for(captured.get(), 15)
        finally:
            client.finish()
            server.close()

    request = parse_connection_request(asyncio.run(capture()))
    assert request.routing_token is not None
    token = file_token(request.routing_token)
    assert token is not None
    assert world.redeem(token, FileTokens(world.core)) == (1, world.session_id, "win 01")


def test_the_connection_page_links_to_the_certificate_fingerprint(world: World) -> None:
    app = create_app(world.core, {"TESTING": True, "WTF_CSRF_ENABLED": False})
    alice = app.test_client()
    alice.post("/login", data={"username": "alice", "password": PASSWORD})
    assert b'href="/rdp/certificate"' in alice.get(f"/sessions/{world.session_id}/connect").data
    page = alice.get("/rdp/certificate")
    assert page.status_code == 200
    assert proxy_certificate(world.core)[2].encode() in page.data
    assert app.test_client().get("/rdp/certificate").status_code in (302, 401)  # signed out
