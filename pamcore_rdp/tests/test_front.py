"""Phase A with the real xfreerdp under Xvfb: the inline prompt painted when the client
has no password (screenshot colours, PNG kept under the test's tmp directory), typing the
password with xdotool, a wrong password's error line and the retry, the redirection into
the relay reaching xrdp (the waiting room: test_waiting_room.py)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import itertools
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pamcore_rdp.pdu.activation import demand_active, parse_confirm_active
from pamcore_rdp.pdu.clientinfo import INFO_UNICODE, ClientInfo
from pamcore_rdp.pdu.errors import RdpProtocolError
from pamcore_rdp.pdu.prompt import (
    BACKGROUND,
    CARD,
    CARD_HEIGHT,
    CARD_WIDTH,
    ERROR,
    TEXT,
    TITLE_BAR,
    card_origin,
)
from pamcore_rdp.pdu.share import parse_share
from pamcore_rdp.pdu.x224 import ConnectionRequest
from pamcore_rdp.proxy.front import Redirect, Retry, Waiting
from pamcore_rdp.proxy.gate import CoreGate, FileTokens
from pamcore_rdp.proxy.redirect_tokens import RedirectTokens
from pamcore_rdp.rdpfile import ROUTING_PREFIX, issue_file_token
from pamcore_rdp.settings import waiting_room
from peers import log_mark, wait_for_log
from PIL import Image
from rdp_display import screenshot, start_xfreerdp, wait_for_pixel, xdotool_type
from rdp_targets import NAVY, XrdpTarget, xrdp_logged_in
from rdp_world import LOGIN, PASSWORD, RdpWorld, rdp_world

from pamcore.clock import FrozenClock
from pamcore.core import Pamcore
from pamcore.errors import ConfigurationError, PamError, PolicyDenied
from pamcore.model import ActivitySession, LoginMode, Platform, Role, User
from pamcore.plugins import PluginHost
from pamcore.services import scheduler
from pamcore.services.approvals import approve_session
from pamcore.services.common import CONSOLE, worker_name
from pamcore.services.ending import complete_ending
from pamcore.services.sessions import SessionRequest, create_session, end_session
from pamcore.testing import builders as b

WIDTH, HEIGHT = 1024, 768
LEFT, TOP = card_origin(WIDTH, HEIGHT)


@pytest.fixture
def world(tmp_path: Path, xvfb_display: str, xrdp_target: XrdpTarget) -> Iterator[RdpWorld]:
    yield from rdp_world(tmp_path, xrdp_target)


def client(world: RdpWorld, display: str, *args: str) -> list[str]:
    return [f"/v:127.0.0.1:{world.port}", f"/size:{WIDTH}x{HEIGHT}", *args]


def card(display: str, path: Path) -> Image.Image:
    """The card as the client shows it, saved as a PNG to look at."""
    image = screenshot(display).crop((LEFT, TOP, LEFT + CARD_WIDTH, TOP + CARD_HEIGHT))
    image.save(path)
    return image


def colours(image: Image.Image) -> set[tuple[int, int, int]]:
    return {colour for _, colour in image.getcolors(1 << 20) or []}


def dots(image: Image.Image) -> int:
    """Dots in the password field of a card: runs of text colour along its middle row
    (the field spans rows 116-146 of the card)."""
    row = [image.getpixel((x, 131)) for x in range(122, CARD_WIDTH - 26)]
    return sum(1 for a, b in itertools.pairwise(row) if a != TEXT and b == TEXT)


def wait_for_prompt(display: str) -> None:
    wait_for_pixel(display, 5, 5, BACKGROUND, timeout=15)
    wait_for_pixel(display, LEFT + 4, TOP + 4, TITLE_BAR)
    wait_for_pixel(display, LEFT + 4, TOP + CARD_HEIGHT - 4, CARD)


def test_no_password_prompt_then_typed_password_reaches_the_target(
    world: RdpWorld, xvfb_display: str, xrdp_target: XrdpTarget
) -> None:
    mark = log_mark(xrdp_target.sesman_log)
    run = start_xfreerdp(client(world, xvfb_display, f"/u:{LOGIN}"), xvfb_display)
    try:
        wait_for_prompt(xvfb_display)
        empty = card(xvfb_display, world.tmp / "prompt.png")
        assert ERROR not in colours(empty)
        xdotool_type(xvfb_display, PASSWORD, enter=False)  # shift for capitals and '!'
        deadline = time.monotonic() + 8
        while dots(card(xvfb_display, world.tmp / "typed.png")) < len(PASSWORD):
            assert time.monotonic() < deadline, "the field never showed a dot per character"
            time.sleep(0.2)
        xdotool_type(xvfb_display, "")  # Return
        world.wait_log("alice signed in, redirecting")
        wait_for_log(xrdp_target.sesman_log, xrdp_logged_in(xrdp_target.username), 15, mark)
        wait_for_pixel(xvfb_display, 100, 100, NAVY, timeout=15)
    finally:
        rc, output = run.finish()
    assert rc == 124, output  # still connected to the target when the test ended it
    assert PASSWORD not in "\n".join(world.logs)
    assert world.audit("connection.opened")


def test_wrong_password_shows_the_error_and_the_retry_works(
    world: RdpWorld, xvfb_display: str, xrdp_target: XrdpTarget
) -> None:
    mark = log_mark(xrdp_target.sesman_log)
    run = start_xfreerdp(
        client(world, xvfb_display, f"/u:{LOGIN}", "/p:not-the-password"), xvfb_display
    )
    try:
        wait_for_prompt(xvfb_display)  # the Client Info password was refused
        assert ERROR in colours(card(xvfb_display, world.tmp / "refused.png"))
        xdotool_type(xvfb_display, "still-wrong")
        assert len(world.audit("auth.failed", count=2)) == 2
        xdotool_type(xvfb_display, PASSWORD)
        world.wait_log("alice signed in, redirecting")
        wait_for_log(xrdp_target.sesman_log, xrdp_logged_in(xrdp_target.username), 15, mark)
    finally:
        run.finish()
    failures = world.audit("auth.failed")
    assert len(failures) == 2, [e.details for e in failures]


def test_three_wrong_passwords_end_the_connection(world: RdpWorld, xvfb_display: str) -> None:
    run = start_xfreerdp(client(world, xvfb_display, f"/u:{LOGIN}"), xvfb_display)
    try:
        wait_for_prompt(xvfb_display)
        for attempt in range(1, 4):
            xdotool_type(xvfb_display, f"wrong-{attempt}")
            assert len(world.audit("auth.failed", count=attempt)) == attempt
        world.wait_log("no tries left")
        rc, output = run.finish(15)
    finally:
        run.finish()
    assert rc != 124, output  # the proxy closed it; the client did not stay connected
    assert len(world.audit("auth.failed")) == 3


@settings(max_examples=300, deadline=None, database=None)
@given(data=st.binary(max_size=120))
def test_fuzzed_share_and_confirm_active_give_protocol_errors_only(data: bytes) -> None:
    """What the front parses after TLS: Share Control/Data headers and the Confirm Active
    capability sets, from random bytes and behind a valid header."""
    for pdu in (data, struct.pack("<HHH", len(data) + 6, 0x17, 1007) + data):
        with contextlib.suppress(RdpProtocolError):
            parse_share(pdu)
    for body in (data, struct.pack("<IHHH", 0x103EA, 1002, 4, len(data)) + b"RDP\0" + data):
        with contextlib.suppress(RdpProtocolError):
            parse_confirm_active(body)


def test_demand_active_offers_what_the_front_uses() -> None:
    """Capability sets the client sees (MS-RDPBCGR 2.2.1.13.1): our bitmap set at 32 bpp
    and the desktop size, input with fast-path and Unicode; read back by our own parser,
    as the client's Confirm Active has the same layout."""
    pdu = demand_active(0x103EA, 1280, 720, 1002)
    total, kind, source = struct.unpack_from("<HHH", pdu)
    assert (total, kind, source) == (len(pdu), 0x11, 1002)
    confirm = pdu[6:10] + struct.pack("<H", 1002) + pdu[10:-4]
    caps = parse_confirm_active(confirm)
    assert (caps.bits_per_pixel, caps.width, caps.height) == (32, 1280, 720)
    assert caps.input_flags & 0x0020 and caps.input_flags & 0x0010  # FASTPATH_INPUT2, UNICODE
    with pytest.raises(RdpProtocolError, match="Confirm Active PDU"):
        parse_confirm_active(confirm[:-30])


# -- the gate: the front's questions to the core (SQLite and PostgreSQL) -----------------


@dataclass
class Gated:
    core: Pamcore
    gate: CoreGate
    session_id: int


@pytest.fixture
def plugin_host(installed_plugin_host: PluginHost) -> PluginHost:
    """With the rdp plugin (its resource settings)."""
    return installed_plugin_host


@pytest.fixture
def gated(core: Pamcore) -> Gated:
    """alice may use win01 as Windows Admin (Available) or Audit (carol approves)."""
    with core.unit() as db:
        alice = b.make_user(db, "alice", password=PASSWORD)
        carol = b.make_user(db, "carol", Role.APPROVER)
        win01 = b.make_resource(db, "win01", protocols={"rdp": 3389}, platform=Platform.WINDOWS)
        b.make_resource(db, "web01", protocols={"ssh": 22})
        cred = b.make_credential(
            core, db, "win01 admin", "Administrator", "V4ulted", resource=win01
        )
        admin = b.make_activity(db, "Windows Admin", login_mode=LoginMode.MANAGED, credential=cred)
        b.make_policy(db, "windows", b.make_profile(db, "standard"), [admin], [win01], [alice])
        gated_profile = b.make_profile(db, "gated", tiers=[(1, [carol], [])])
        audit = b.make_activity(db, "Audit", login_mode=LoginMode.MANAGED, credential=cred)
        b.make_policy(db, "audit", gated_profile, [audit], [win01], [alice])
        sid = create_session(core, db, alice, SessionRequest("Windows Admin", ("win01",))).id
    scheduler.tick(core)
    (core.config.instance_path / "web-secret.key").write_text(SECRET + "\n")
    return Gated(core, CoreGate(core, RedirectTokens(core), FileTokens(core), "10.0.0.5"), sid)


SECRET = "gate-test-secret-" + "x" * 20


def info(username: str = "", password: str = "") -> ClientInfo:
    return ClientInfo(0, INFO_UNICODE, "", username, password)


def file_request(gated: Gated) -> ConnectionRequest:
    with gated.core.unit() as db:
        alice = db.query(User).filter_by(username="alice").one()
        token = issue_file_token(gated.core, db, alice, gated.session_id, "win01", SECRET)
    return ConnectionRequest(routing_token=ROUTING_PREFIX + token, requested_protocols=1)


def test_gate_identifies_by_login_cookie_or_rdp_file(gated: Gated) -> None:
    identify = gated.gate.identify
    by_name = asyncio.run(identify(ConnectionRequest(), info(LOGIN)))
    assert (by_name.username, by_name.target) == ("alice", "win01")
    by_cookie = asyncio.run(identify(ConnectionRequest(cookie=LOGIN), info()))
    assert (by_cookie.username, by_cookie.target) == ("alice", "win01")
    request = file_request(gated)
    by_file = asyncio.run(identify(request, info("whatever the file says")))
    assert (by_file.username, by_file.target) == ("alice", "win01")
    # The file's token again: spent, so the user name routes (the file names the login).
    again = asyncio.run(identify(request, info(LOGIN)))
    assert (again.username, again.target) == ("alice", "win01")
    with pytest.raises(PamError, match="already used"):
        asyncio.run(identify(request, info()))


@pytest.mark.parametrize(
    ("username", "message"),
    [("", "user\\+activity\\+resource"), ("alice", "names no resource"), ("a++b", "is not")],
)
def test_gate_refuses_a_login_it_cannot_route(gated: Gated, username: str, message: str) -> None:
    with pytest.raises(PamError, match=message):
        asyncio.run(gated.gate.identify(ConnectionRequest(), info(username)))


def test_gate_sign_in_outcomes(gated: Gated) -> None:
    gate = gated.gate
    visitor = asyncio.run(gate.identify(ConnectionRequest(), info(LOGIN)))
    assert asyncio.run(gate.sign_in(visitor, "not-it")) == Retry("Wrong username or password.")
    redirect = asyncio.run(gate.sign_in(visitor, PASSWORD))
    assert isinstance(redirect, Redirect)
    redeemed = gate.redirects.redeem(redirect.token, "10.0.0.5")
    assert (redeemed.session_id, redeemed.resource_name) == (gated.session_id, "win01")
    waiting = asyncio.run(
        gate.sign_in(
            asyncio.run(gate.identify(ConnectionRequest(), info("alice+Audit+win01"))), PASSWORD
        )
    )
    assert isinstance(waiting, Waiting) and "approval by carol" in waiting.message
    web = asyncio.run(gate.identify(ConnectionRequest(), info("alice+web01")))
    with pytest.raises(PamError):
        asyncio.run(gate.sign_in(web, PASSWORD))  # no RDP there: the core's refusal
    by_file = asyncio.run(gate.identify(file_request(gated), info()))
    redirect = asyncio.run(gate.sign_in(by_file, PASSWORD))
    assert isinstance(redirect, Redirect)
    assert gate.redirects.redeem(redirect.token, "10.0.0.5").session_id == gated.session_id


def test_gate_polls_a_waiting_session_until_it_is_available(gated: Gated) -> None:
    gate = gated.gate
    visitor = asyncio.run(gate.identify(ConnectionRequest(), info("alice+Audit+win01")))
    waiting = asyncio.run(gate.sign_in(visitor, PASSWORD))
    assert isinstance(waiting, Waiting)
    assert "approval by carol" in waiting.message and "Waiting until" in waiting.message
    again = asyncio.run(gate.poll(waiting))
    assert isinstance(again, Waiting) and again.message == waiting.message
    with gated.core.unit() as db:
        session_id = db.query(ActivitySession).filter_by(status="waiting_for_approval").one().id
        approve_session(
            gated.core, db, db.query(User).filter_by(username="carol").one(), session_id
        )
    scheduler.tick(gated.core)
    redirect = asyncio.run(gate.poll(again))
    assert isinstance(redirect, Redirect)
    assert gate.redirects.redeem(redirect.token, "10.0.0.5").session_id == session_id


def test_gate_stops_waiting_at_the_bound(gated: Gated, clock: FrozenClock) -> None:
    gate = CoreGate(
        gated.core,
        RedirectTokens(gated.core),
        FileTokens(gated.core),
        "10.0.0.5",
        dt.timedelta(minutes=3),
    )
    visitor = asyncio.run(gate.identify(ConnectionRequest(), info("alice+Audit+win01")))
    waiting = asyncio.run(gate.sign_in(visitor, PASSWORD))
    assert isinstance(waiting, Waiting)
    clock.now += dt.timedelta(minutes=2, seconds=59)
    assert isinstance(asyncio.run(gate.poll(waiting)), Waiting)
    clock.now += dt.timedelta(seconds=1)
    with pytest.raises(PolicyDenied, match="stopped waiting after 3 minutes: .*carol"):
        asyncio.run(gate.poll(waiting))


def test_gate_refuses_an_rdp_file_whose_session_ended(gated: Gated) -> None:
    visitor = asyncio.run(gated.gate.identify(file_request(gated), info()))
    with gated.core.unit() as db:
        end_session(gated.core, db, CONSOLE, gated.session_id)
    complete_ending(gated.core, gated.session_id, worker_name(), CONSOLE.username)
    with pytest.raises(PolicyDenied, match=f"session #{gated.session_id} ended"):
        asyncio.run(gated.gate.sign_in(visitor, PASSWORD))


@pytest.mark.parametrize(
    ("value", "minutes"), [(None, 10), (1, 1), (0.5, 0.5), (0, None), (True, None), ("5", None)]
)
def test_waiting_room_minutes_setting(core: Pamcore, value: object, minutes: float | None) -> None:
    table = {} if value is None else {"waiting_room_minutes": value}
    config = dataclasses.replace(core.config, plugin_settings={"rdp": table})
    if minutes is None:
        with pytest.raises(ConfigurationError, match="waiting_room_minutes"):
            waiting_room(config)
    else:
        assert waiting_room(config) == dt.timedelta(minutes=minutes)
