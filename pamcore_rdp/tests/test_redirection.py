"""Phase A to Phase B with the real xfreerdp: a password given in the client signs in
without any prompt and the Server Redirection PDU brings the client back with a redirect
token that the relay redeems (reaching xrdp); the token is refused when used again; the ``.rdp``
file's routing token routes the first connection; the session's end closes the relay.
An extended session's relay outlives the old end time. In the warning window the relay's
banner appears on the client's screen and Ctrl+X there extends the session. The PDU's
bytes are checked against the layout FreeRDP parses."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pamcore_rdp.pdu.prompt import CARD, TITLE_BAR, card_origin
from pamcore_rdp.pdu.redirection import LB_LOAD_BALANCE_INFO, redirect_cookie, server_redirection
from pamcore_rdp.pdu.x224 import parse_connection_request
from pamcore_rdp.proxy import listener
from pamcore_rdp.proxy.banner import HEIGHT, WIDTH, banner_left
from pamcore_rdp.proxy.relay import Relay
from pamcore_rdp.rdpfile import issue_file_token, rdp_file
from peers import log_mark, wait_for_log
from rdp_display import (
    TIMED_OUT,
    XfreerdpRun,
    screenshot,
    screenshot_pixel,
    start_xfreerdp,
    wait_for_pixel,
    xdotool_key,
    xdotool_pointer,
)
from rdp_targets import NAVY, XrdpTarget, xrdp_logged_in
from rdp_world import LOGIN, PASSWORD, RdpWorld, rdp_world

from pamcore.model import ActivitySession, User
from pamcore.services.common import CONSOLE, worker_name
from pamcore.services.ending import complete_ending
from pamcore.services.sessions import end_session, extend_session


@pytest.fixture
def world(tmp_path: Path, xvfb_display: str, xrdp_target: XrdpTarget) -> Iterator[RdpWorld]:
    yield from rdp_world(tmp_path, xrdp_target)


def spy_redirects(world: RdpWorld) -> list[str]:
    """The redirect tokens the listener issues (wrapping its RedirectTokens, which still does
    the work)."""
    issued: list[str] = []
    issue = world.listener.redirects.issue

    def recording(*args: object) -> str:
        token = issue(*args)  # type: ignore[arg-type]
        issued.append(token)
        return token

    world.listener.redirects.issue = recording  # type: ignore[method-assign]
    return issued


def reach_target(display: str, xrdp: XrdpTarget, args: list[str]) -> None:
    """Run xfreerdp with ``args`` until the xrdp session is on screen, then end it."""
    mark = log_mark(xrdp.sesman_log)
    run = start_xfreerdp([*args, "/size:1024x768"], display)
    try:
        wait_for_log(xrdp.sesman_log, xrdp_logged_in(xrdp.username), 15, mark)
        wait_for_pixel(display, 100, 100, NAVY, timeout=15)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nxfreerdp: {run.finish()[1][-2000:]}") from None
    rc, output = run.finish()
    assert rc == TIMED_OUT, output


def test_the_redirection_pdu_as_freerdp_reads_it() -> None:
    """MS-RDPBCGR 2.2.13.3.1 around 2.2.13.1, consumed exactly as FreeRDP 2.11
    (rdp_recv_enhanced_security_redirection_packet) reads it."""
    pdu = server_redirection("T1ck3t", 1002)
    total, pdu_type, source = struct.unpack_from("<HHH", pdu)
    assert (total, pdu_type & 0x0F, source) == (len(pdu), 0xA, 1002)
    flags, length, session_id, redir_flags = struct.unpack_from("<HHII", pdu, 8)
    assert (flags, session_id, redir_flags) == (0x0400, 0, LB_LOAD_BALANCE_INFO)
    (info_length,) = struct.unpack_from("<I", pdu, 20)
    info = pdu[24 : 24 + info_length]
    assert info == b"Cookie: msts=T1ck3t\r\n"
    assert length == 16 + info_length  # up to the 8-byte pad
    assert pdu[24 + info_length :] == b"\0" * 8
    # The client puts LoadBalanceInfo verbatim into its next Connection Request.
    request = b"\xe0\0\0\0\0\0" + redirect_cookie("T1ck3t") + struct.pack("<BBHI", 1, 0, 8, 3)
    frame = struct.pack(">BBH", 3, 0, 5 + len(request)) + bytes([len(request)]) + request
    assert parse_connection_request(frame).routing_token == "T1ck3t"


def test_password_in_the_client_redirects_without_a_prompt_and_the_redirect_token_is_single_use(
    world: RdpWorld, xvfb_display: str, xrdp_target: XrdpTarget
) -> None:
    issued = spy_redirects(world)
    reach_target(
        xvfb_display, xrdp_target, [f"/v:127.0.0.1:{world.port}", f"/u:{LOGIN}", f"/p:{PASSWORD}"]
    )
    assert len(issued) == 1
    assert not [line for line in world.logs if "prompt" in line]
    assert world.audit("connection.opened")
    # The same token again (a replayed redirection): refused, shown, closed.
    run = start_xfreerdp(
        [
            f"/v:127.0.0.1:{world.port}",
            "/size:1024x768",
            f"/load-balance-info:Cookie: msts={issued[0]}",
        ],
        xvfb_display,
    )
    try:
        left, top = card_origin(1024, 768)
        wait_for_pixel(xvfb_display, left + 4, top + 4, TITLE_BAR, timeout=15)
        assert "already used" in world.wait_log("redirect token refused")
        rc, output = run.finish(15)
    finally:
        run.finish()
    assert rc != TIMED_OUT, output
    assert len(world.audit("connection.opened", timeout=0)) == 1


def test_rdp_file_routing_token(
    world: RdpWorld, xvfb_display: str, xrdp_target: XrdpTarget
) -> None:
    secret = "s" * 32
    (world.tmp / "instance" / "web-secret.key").write_text(secret + "\n")
    with world.core.unit() as db:
        alice = db.query(User).filter_by(username="alice").one()
        token = issue_file_token(world.core, db, alice, world.session_id, "win01", secret)
    path = world.tmp / "win01.rdp"
    # The file's user name is deliberately not a DirectConnect login: the token routes.
    path.write_bytes(rdp_file("127.0.0.1", "alice", world.port, token))
    reach_target(xvfb_display, xrdp_target, [str(path), f"/p:{PASSWORD}"])  # the file first
    assert world.wait_log("alice signed in, redirecting")


def connected_then(
    world: RdpWorld, display: str, xrdp: XrdpTarget, end: Callable[[], None]
) -> tuple[str, float]:
    """Connect through the proxy to xrdp, call ``end``, and return the reason the
    connection was closed with and the seconds the proxy took; the client must be gone."""
    mark = log_mark(xrdp.sesman_log)
    run = start_xfreerdp(
        [f"/v:127.0.0.1:{world.port}", "/size:1024x768", f"/u:{LOGIN}", f"/p:{PASSWORD}"],
        display,
    )
    try:
        wait_for_log(xrdp.sesman_log, xrdp_logged_in(xrdp.username), 15, mark)
        started = time.monotonic()
        end()
        closed = world.audit("connection.closed")
        took = time.monotonic() - started
        rc, output = run.finish(10)
    finally:
        run.finish()
    assert rc != TIMED_OUT, output  # the client was disconnected
    closed = world.audit("connection.closed")  # again, now that the relay is gone too
    assert len(closed) == 1, [e.details for e in closed]
    opened = world.audit("connection.opened")
    assert [e.details["connection"] for e in opened] == [closed[0].details["connection"]]
    return closed[0].details.get("reason", ""), took


def test_ending_the_session_closes_the_relay(
    world: RdpWorld, xvfb_display: str, xrdp_target: XrdpTarget
) -> None:
    """As ``pamcore sessions end`` does: the ending is completed at once, maybe before the
    proxy closed the relay; the connection is audited closed once either way."""

    def end() -> None:
        with world.core.unit() as db:
            end_session(world.core, db, CONSOLE, world.session_id)
        complete_ending(world.core, world.session_id, worker_name(), CONSOLE.username)

    reason, took = connected_then(world, xvfb_display, xrdp_target, end)
    assert "ended" in reason and took < 3


def test_the_end_time_closes_the_relay(
    world: RdpWorld, xvfb_display: str, xrdp_target: XrdpTarget
) -> None:
    def end() -> None:
        world.clock.now = world.session_ends() + dt.timedelta(seconds=1)

    reason, took = connected_then(world, xvfb_display, xrdp_target, end)
    assert "end time" in reason and took < 3


def test_an_extended_session_is_not_closed_at_its_old_end_time(
    world: RdpWorld, xvfb_display: str, xrdp_target: XrdpTarget
) -> None:
    """The core's watch reads the session's end time again when told of the extension, so
    an extension needs nothing from the plugin."""
    old_end = world.session_ends()
    mark = log_mark(xrdp_target.sesman_log)
    run = start_xfreerdp(
        [f"/v:127.0.0.1:{world.port}", "/size:1024x768", f"/u:{LOGIN}", f"/p:{PASSWORD}"],
        xvfb_display,
    )
    try:
        wait_for_log(xrdp_target.sesman_log, xrdp_logged_in(xrdp_target.username), 15, mark)
        world.clock.now = old_end - dt.timedelta(minutes=4)  # inside the extension window
        with world.core.unit() as db:
            extend_session(world.core, db, CONSOLE, world.session_id)
        new_end = world.session_ends()
        world.clock.now = old_end + dt.timedelta(seconds=1)

        assert new_end > world.clock.now
        assert world.audit("connection.closed", timeout=3) == []  # three watch rounds
        assert run.process.poll() is None  # the client is still connected

        world.clock.now = new_end + dt.timedelta(seconds=1)
        closed = world.audit("connection.closed")
        rc, output = run.finish(10)
    finally:
        run.finish()
    assert rc != TIMED_OUT, output
    assert [e.details.get("reason", "") for e in closed] == ["session end time reached"]


@contextlib.contextmanager
def banner_shown(
    world: RdpWorld, display: str, xrdp: XrdpTarget
) -> Iterator[tuple[XfreerdpRun, Relay]]:
    """A relayed xfreerdp session: no banner while the end is far, then the clock moves
    into the warning window and the banner's pixels appear."""
    bar = (banner_left(1024) + WIDTH - 8, 4)  # the banner's title bar, right of its text
    mark = log_mark(xrdp.sesman_log)
    run = start_xfreerdp(
        [f"/v:127.0.0.1:{world.port}", "/size:1024x768", f"/u:{LOGIN}", f"/p:{PASSWORD}"],
        display,
    )
    try:
        wait_for_log(xrdp.sesman_log, xrdp_logged_in(xrdp.username), 15, mark)
        wait_for_pixel(display, 100, 100, NAVY, timeout=15)
        (relay,) = world.listener.relays
        time.sleep(2.5)  # watch rounds outside the window: nothing is painted
        assert relay.banner_bytes == 0
        assert screenshot_pixel(display, *bar) != TITLE_BAR

        world.clock.now = world.session_ends() - dt.timedelta(minutes=4)
        wait_for_pixel(display, *bar, TITLE_BAR, timeout=5)
        wait_for_pixel(display, bar[0], HEIGHT - 4, CARD, timeout=5)
        yield run, relay
    finally:
        run.finish()


#: The target's navy xterm (rdp_targets.XSESSION) left of the banner, where its tty echoes keys.
XTERM_BESIDE_BANNER = (10, 10, 260, 330)


def wait_until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.2)
    return check()


def test_the_banner_shows_in_the_warning_window_and_ctrl_x_extends(
    world: RdpWorld, xvfb_display: str, xrdp_target: XrdpTarget
) -> None:
    old_end = world.session_ends()
    with banner_shown(world, xvfb_display, xrdp_target) as (run, relay):
        painted = relay.banner_bytes
        xdotool_pointer(xvfb_display, 200, 200)  # over the xterm, which then has the keys
        time.sleep(1)
        terminal = screenshot(xvfb_display).crop(XTERM_BESIDE_BANNER)
        xdotool_key(xvfb_display, "ctrl+x")
        assert wait_until(lambda: world.session_ends() != old_end, 8)
        assert world.session_ends() == old_end + dt.timedelta(minutes=30)  # the increment
        assert wait_until(lambda: relay.banner_bytes > painted, 5)  # the outcome painted
        time.sleep(1)
        # The X never reached the target: its terminal did not echo ^X ...
        assert screenshot(xvfb_display).crop(XTERM_BESIDE_BANNER) == terminal
        # ... which it does for a Ctrl+X outside the window (the new end is far).
        xdotool_key(xvfb_display, "ctrl+x")
        assert wait_until(lambda: screenshot(xvfb_display).crop(XTERM_BESIDE_BANNER) != terminal, 5)

        world.clock.now = old_end + dt.timedelta(seconds=1)
        assert world.audit("connection.closed", timeout=3) == []
        assert run.process.poll() is None  # the client is still connected


def test_ctrl_x_without_extensions_left_is_refused_in_the_banner(
    world: RdpWorld, xvfb_display: str, xrdp_target: XrdpTarget
) -> None:
    old_end = world.session_ends()
    with world.core.unit() as db:
        session = db.get(ActivitySession, world.session_id)
        assert session is not None
        session.extensions_used = session.profile.extension_max_count
    with banner_shown(world, xvfb_display, xrdp_target) as (run, relay):
        painted = relay.banner_bytes
        xdotool_key(xvfb_display, "ctrl+x")
        assert wait_until(lambda: relay.banner_bytes > painted, 8)  # the refusal painted
        assert world.session_ends() == old_end

        world.clock.now = old_end + dt.timedelta(seconds=1)
        closed = world.audit("connection.closed")
        rc, output = run.finish(10)
    assert rc != TIMED_OUT, output
    assert [e.details.get("reason", "") for e in closed] == ["session end time reached"]


def test_a_fault_of_ours_in_phase_b_shows_a_card_and_logs_the_traceback(
    world: RdpWorld,
    xvfb_display: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Admission failing for a reason that is not the user's (the database, a bug): the
    client gets the refusal card, not a dropped connection; the operator gets the
    traceback in the proxy's log; nothing counts as opened."""

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("connection to db-internal.example failed")

    monkeypatch.setattr(listener, "admit", broken)
    caplog.set_level(logging.ERROR, logger="pamcore_rdp")
    run = start_xfreerdp(
        [f"/v:127.0.0.1:{world.port}", "/size:1024x768", f"/u:{LOGIN}", f"/p:{PASSWORD}"],
        xvfb_display,
    )
    try:
        left, top = card_origin(1024, 768)
        wait_for_pixel(xvfb_display, left + 4, top + 4, TITLE_BAR, timeout=20)
        world.wait_log("admission failed")
        rc, output = run.finish(15)
    finally:
        run.finish()
    assert rc != TIMED_OUT, output
    assert not world.audit("connection.opened", timeout=0)
    assert any(r.exc_info and "db-internal" in str(r.exc_info[1]) for r in caplog.records)
