"""The end of a session seen from a real ``ssh`` client: Ctrl+X inside and outside the
warning window, ending from the CLI, the closing notice every time, the forced close."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import time

import pexpect
from proxy_world import World, shell
from sqlalchemy import select

from pamcore.core import Pamcore
from pamcore.model import (
    AuditEvent,
    User,
)
from pamcore.plugins import PluginHost
from pamcore.services import scheduler
from pamcore.services.common import CONSOLE, worker_name
from pamcore.services.ending import complete_ending
from pamcore.services.sessions import SessionRequest, create_session, end_session


def test_pty_ctrl_x_passes_outside_the_window_and_extends_inside(world: World) -> None:
    child = shell(world)
    child.setwinsize(40, 132)
    child.sendline("stty size")
    child.expect("40 132")
    child.sendline("cat -v")
    child.send("a\x18b\r")
    child.expect(r"a\^Xb")  # outside the window: passed to the target untouched
    child.sendcontrol("c")
    child.expect("PROMPT> ")
    ends = world.session().ends_at
    assert ends is not None
    world.clock.now = ends - dt.timedelta(minutes=4)
    child.expect(r"session ends in 4 minutes .*press Ctrl\+X to extend", timeout=5)
    child.sendline("cat -v")
    child.send("c\x18d\r")
    child.expect("session extended until")
    child.expect("cd")  # the ^X was taken by the proxy, not passed on
    child.sendcontrol("c")
    child.sendline("exit")
    child.expect(pexpect.EOF)
    session = world.session()
    assert session.extensions_used == 1
    assert session.ends_at == ends + dt.timedelta(minutes=30)


def test_end_from_the_cli_closes_the_connection_within_2s(world: World) -> None:
    child = shell(world)
    with world.core.unit() as db:
        end_session(world.core, db, CONSOLE, world.session_id)
    started = time.monotonic()
    child.expect("the session was ended; closing the connection", timeout=3)
    child.expect(pexpect.EOF, timeout=3)
    assert time.monotonic() - started < 2.5


#: Tries of the closing notice: it must reach the client every time, not most times.
NOTICE_TRIES = 20


def test_the_closing_notice_reaches_the_client_every_time(world: World) -> None:
    """Sessions ended while a shell is open, as ``pamcore sessions end`` does (ending, then
    its completion at once): half through this proxy's core, whose hook reaches the proxy
    at once, half through another core, like the CLI's, whose news the proxy's watch
    brings; then the target's shell is killed, as an account-removing post-session action
    does. The notice is shown every time, and each connection has its own id with one
    opened/closed pair."""
    elsewhere = Pamcore(world.core.config, plugins=PluginHost(strict=True), clock=world.clock)
    session_id = world.session_id
    shown = 0
    try:
        for attempt in range(NOTICE_TRIES):
            child = shell(world)
            child.sendline("echo shell-pid-$$")
            child.expect(r"shell-pid-(\d+)")
            pid = int(child.match.group(1))
            ender = world.core if attempt % 2 else elsewhere
            with ender.unit() as db:
                end_session(ender, db, CONSOLE, session_id)
            with contextlib.suppress(ProcessLookupError):  # the proxy may have closed it
                os.kill(pid, signal.SIGKILL)  # what removing the account does to its shell
            complete_ending(ender, session_id, worker_name(), CONSOLE.username)
            shown += (
                child.expect(
                    ["the session was ended; closing the connection", pexpect.EOF], timeout=5
                )
                == 0
            )
            child.expect(pexpect.EOF, timeout=5)
            with world.core.unit() as db:
                alice = db.scalar(select(User).where(User.username == "alice"))
                request = SessionRequest("Linux Admin", ("web01",))
                session_id = create_session(world.core, db, alice, request).id
            assert session_id in scheduler.tick(world.core).activated
    finally:
        elsewhere.dispose()
    assert shown == NOTICE_TRIES
    with world.core.reader() as db:
        events = db.scalars(
            select(AuditEvent)
            .where(AuditEvent.action.in_(["connection.opened", "connection.closed"]))
            .order_by(AuditEvent.id)
        )
        pairs = [(e.action, e.details["connection"]) for e in events]
    opened = [c for action, c in pairs if action == "connection.opened"]
    assert len(set(opened)) == NOTICE_TRIES
    assert sorted(pairs) == sorted(
        (action, c) for c in opened for action in ("connection.opened", "connection.closed")
    )


def test_forced_close_at_the_end_time(world: World) -> None:
    child = shell(world)
    ends = world.session().ends_at
    assert ends is not None
    world.clock.now = ends + dt.timedelta(seconds=1)
    child.expect("session end time reached; closing the connection", timeout=4)
    child.expect(pexpect.EOF, timeout=3)
