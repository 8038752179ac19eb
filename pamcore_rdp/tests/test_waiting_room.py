"""The RDP waiting room with the real xfreerdp against xrdp through the proxy: a first
connect whose session is still being prepared, or waits for an approval, stays on the card
and goes on to the desktop once the session is Available (the scheduler's tick and the
approval are the service calls the worker and the approver make); the wait's bound closes
with a card; a stale ``.rdp`` file whose session ended says so and the client does not
reconnect in a loop."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pamcore_rdp.pdu.prompt import TITLE_BAR, card_origin
from pamcore_rdp.rdpfile import issue_file_token, rdp_file
from peers import log_mark, wait_for_log
from rdp_display import TIMED_OUT, XfreerdpRun, start_xfreerdp, wait_for_pixel
from rdp_targets import NAVY, XrdpTarget, xrdp_logged_in
from rdp_world import PASSWORD, RdpWorld, rdp_world

from pamcore.model import User
from pamcore.services import scheduler
from pamcore.services.approvals import approve_session
from pamcore.services.common import CONSOLE, worker_name
from pamcore.services.ending import complete_ending
from pamcore.services.sessions import end_session

LEFT, TOP = card_origin(1024, 768)


@pytest.fixture
def world(tmp_path: Path, xvfb_display: str, xrdp_target: XrdpTarget) -> Iterator[RdpWorld]:
    yield from rdp_world(tmp_path, xrdp_target)


def connect(world: RdpWorld, display: str, *args: str) -> XfreerdpRun:
    return start_xfreerdp([f"/v:127.0.0.1:{world.port}", "/size:1024x768", *args], display)


def end_the_session(world: RdpWorld) -> None:
    """End the world's Available session, as ``pamcore sessions end`` does."""
    with world.core.unit() as db:
        end_session(world.core, db, CONSOLE, world.session_id)
    complete_ending(world.core, world.session_id, worker_name(), CONSOLE.username)


def reaches_the_desktop(run: XfreerdpRun, display: str, xrdp: XrdpTarget, mark: int) -> None:
    try:
        wait_for_log(xrdp.sesman_log, xrdp_logged_in(xrdp.username), 20, mark)
        wait_for_pixel(display, 100, 100, NAVY, timeout=15)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nxfreerdp: {run.finish()[1][-2000:]}") from None
    rc, output = run.finish()
    assert rc == TIMED_OUT, output  # still on the desktop when the test ended it


def closed_by_the_proxy(run: XfreerdpRun) -> None:
    """The client left on its own after the card (no reconnect loop keeps it running)."""
    rc, output = run.finish(20)
    assert rc != TIMED_OUT, output


def test_a_new_session_reaches_the_desktop_on_the_first_connect(
    world: RdpWorld, xvfb_display: str, xrdp_target: XrdpTarget
) -> None:
    end_the_session(world)
    mark = log_mark(xrdp_target.sesman_log)
    run = connect(world, xvfb_display, "/u:alice+Windows-Admin+win01", f"/p:{PASSWORD}")
    try:
        wait_for_pixel(xvfb_display, LEFT + 4, TOP + 4, TITLE_BAR, timeout=15)
        line = world.wait_log("alice waits:")
        assert "as soon as it is available" in line
        new_session = int(line.split("#")[1].split()[0])
        assert new_session != world.session_id
        time.sleep(3)  # a few polls: the card stays up, the client stays connected
        assert run.process.poll() is None
        assert new_session in scheduler.tick(world.core).activated  # the worker's tick
        reaches_the_desktop(run, xvfb_display, xrdp_target, mark)
    finally:
        run.finish()
    opened = world.audit("connection.opened")
    assert [e.session_id for e in opened] == [new_session]


def test_an_approval_given_while_waiting_takes_the_client_to_the_desktop(
    world: RdpWorld, xvfb_display: str, xrdp_target: XrdpTarget
) -> None:
    mark = log_mark(xrdp_target.sesman_log)
    run = connect(world, xvfb_display, "/u:alice+Audit+win01", f"/p:{PASSWORD}")
    try:
        wait_for_pixel(xvfb_display, LEFT + 4, TOP + 4, TITLE_BAR, timeout=15)
        line = world.wait_log("alice waits:")
        assert "waiting for approval by carol" in line
        session_id = int(line.split("#")[1].split()[0])
        with world.core.unit() as db:
            carol = db.query(User).filter_by(username="carol").one()
            approve_session(world.core, db, carol, session_id)
        scheduler.tick(world.core)
        reaches_the_desktop(run, xvfb_display, xrdp_target, mark)
    finally:
        run.finish()
    assert world.wait_log("alice signed in, redirecting")


def test_the_wait_ends_at_its_bound_with_a_card(world: RdpWorld, xvfb_display: str) -> None:
    run = connect(world, xvfb_display, "/u:alice+Audit+win01", f"/p:{PASSWORD}")
    try:
        world.wait_log("alice waits:", timeout=15)
        world.clock.now += dt.timedelta(minutes=10, seconds=1)  # the default bound
        line = world.wait_log("refused: stopped waiting after 10 minutes")
        assert "waiting for approval by carol" in line
        wait_for_pixel(xvfb_display, LEFT + 4, TOP + 4, TITLE_BAR)
        closed_by_the_proxy(run)
    finally:
        run.finish()
    assert not world.audit("connection.opened", timeout=0)


def test_a_stale_rdp_file_says_its_session_ended_and_the_client_does_not_loop(
    world: RdpWorld, xvfb_display: str
) -> None:
    secret = "s" * 32
    (world.tmp / "instance" / "web-secret.key").write_text(secret + "\n")
    with world.core.unit() as db:
        alice = db.query(User).filter_by(username="alice").one()
        token = issue_file_token(world.core, db, alice, world.session_id, "win01", secret)
    end_the_session(world)
    path = world.tmp / "win01.rdp"  # with autoreconnection enabled, as the dashboard writes
    path.write_bytes(rdp_file("127.0.0.1", "alice+Windows-Admin+win01", world.port, token))
    run = start_xfreerdp([str(path), f"/p:{PASSWORD}", "/size:1024x768"], xvfb_display)
    try:
        line = world.wait_log("refused:", timeout=15)
        assert f"session #{world.session_id} ended" in line
        closed_by_the_proxy(run)
    finally:
        run.finish()
    refusals = [line for line in world.logs if "rdp front" in line and "refused" in line]
    assert len(refusals) == 1, refusals
    assert not [line for line in world.logs if "waits:" in line or "redirecting" in line]
