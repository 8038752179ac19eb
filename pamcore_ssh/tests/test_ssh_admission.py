"""Who gets in, through a real ``ssh`` client: one-line refusals, the login menu, host-key
trust on first use, the waiting room, and forwarding refused with a reason."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import socket
import subprocess
import time

import pexpect
import pytest
from pamcore_ssh.server import FORWARDING, UNEXPECTED
from proxy_world import SSH_OPTS, World
from sqlalchemy import select
from ssh_peers import Sshd

from pamcore.model import (
    AccessPolicy,
    Activity,
    ActivitySession,
    LoginMode,
    Resource,
    User,
)
from pamcore.services import scheduler
from pamcore.services.approvals import approve_session
from pamcore.services.common import CONSOLE, worker_name
from pamcore.services.ending import complete_ending
from pamcore.services.sessions import SessionRequest, create_session, end_session
from pamcore.testing import builders as b
from pamcore.testing.contract import closed_port as free_port
from pamcore.testing.sshd import run_ssh
from pamcore_ssh import listener, lobby


def test_refusals_are_one_line(world: World, sshd: Sshd) -> None:
    uncovered = world.ssh("alice+db01", "true")
    assert uncovered.returncode != 0
    assert uncovered.stderr.strip() == "pamcore: no access policy grants alice db01"
    wrong_user = world.ssh("mallory+web01", "true")
    assert wrong_user.returncode == 255
    with world.core.unit() as db:
        db.scalar(
            select(Resource).where(Resource.name == "web01")
        ).host_key = sshd.other_host_key_line
    mismatch = world.ssh("alice+web01", "true")
    assert "pamcore: the host key of web01 changed" in mismatch.stderr
    assert "connection.host_key_refused" in world.audit_actions()
    with world.core.unit() as db:
        db.scalar(select(Resource).where(Resource.name == "web01")).host_key = None
    world.clock.now = world.session().ends_at + dt.timedelta(minutes=1)
    expired = world.ssh("alice+web01", "true")
    assert "pamcore: session #1 expired at" in expired.stderr


def test_a_fault_of_ours_is_told_in_words_and_logged(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Admission failing for a reason that is not the user's (the database, a bug): the
    user reads one line saying so, never the error's text; the operator gets the
    traceback in the proxy's log."""

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("connection to db-internal.example failed")

    monkeypatch.setattr(listener, "admit", broken)
    with caplog.at_level(logging.ERROR, logger="pamcore_ssh.server"):
        failed = world.ssh("alice+web01", "true")
    assert failed.returncode != 0
    assert failed.stderr.strip() == f"pamcore: {UNEXPECTED}"
    assert "db-internal" not in failed.stderr
    assert any(r.exc_info and "db-internal" in str(r.exc_info[1]) for r in caplog.records), (
        caplog.text
    )


def test_resource_alone_with_two_activities_names_the_logins_to_use(world: World) -> None:
    with world.core.unit() as db:
        alice = db.scalar(select(User).where(User.username == "alice"))
        web01 = db.scalar(select(Resource).where(Resource.name == "web01"))
        linux = db.scalar(select(Activity).where(Activity.name == "Linux Admin"))
        deploy = b.make_activity(
            db, "Web Deploy", login_mode=LoginMode.MANAGED, credential=linux.credential
        )
        b.make_policy(db, "deployers", b.make_profile(db, "quick"), [deploy], [web01], [alice])
        create_session(world.core, db, alice, SessionRequest("Web Deploy", ("web01",)))
    scheduler.tick(world.core)
    refused = world.ssh("alice+web01", "true")
    assert refused.returncode != 0
    assert refused.stderr == (
        "pamcore: you have sessions for 2 activities on web01; log in as one of "
        "alice+Linux-Admin+web01, alice+Web-Deploy+web01\n"
    )
    assert world.ssh("alice+web-deploy+web01", "whoami").stdout == "root\n"


def test_trust_on_first_use_pins_the_key(world: World, sshd: Sshd) -> None:
    with world.core.unit() as db:
        web01 = db.scalar(select(Resource).where(Resource.name == "web01"))
        web01.host_key, web01.trust_on_first_use = None, True
    assert world.ssh("alice+web01", "true").returncode == 0
    with world.core.reader() as db:
        assert (
            db.scalar(select(Resource.host_key).where(Resource.name == "web01"))
            == sshd.host_key_line
        )


def test_directconnect_creates_a_session_and_the_waiting_room_lets_the_user_in(
    world: World,
) -> None:
    with world.core.unit() as db:
        bob = b.make_user(db, "bob", password="E2e-bob-pw-2")
        alice = db.scalar(select(User).where(User.username == "alice"))
        db01 = db.scalar(select(Resource).where(Resource.name == "db01"))
        cred = b.make_credential(
            world.core, db, "db01 root", "root", private_key=world.sshd_key, resource=db01
        )
        activity = b.make_activity(db, "DB Admin", login_mode=LoginMode.MANAGED, credential=cred)
        approved = b.make_profile(db, "approved", tiers=[(1, [bob], [])])
        b.make_policy(db, "dba", approved, [activity], [db01], [alice])
    child = pexpect.spawn(
        "ssh",
        [
            "-tt",
            *SSH_OPTS,
            "-i",
            str(world.key),
            "-p",
            str(world.port),
            "alice+db-admin+db01@127.0.0.1",
        ],
        timeout=15,
        encoding="utf-8",
    )
    child.expect(r"session #(\d+) is waiting for approval by bob")
    session_id = int(child.match.group(1))
    refused = world.ssh("alice+db01", "true")  # another login meanwhile: one clear line
    assert refused.stderr.strip() == f"pamcore: {child.match.group(0)}"
    with world.core.unit() as db:
        approve_session(world.core, db, db.get(User, 2), session_id)
    assert session_id in scheduler.tick(world.core).activated
    child.expect("the session is available", timeout=6)
    child.sendline("echo in-$((6*7))")
    child.expect("in-42")
    child.sendline("exit")
    child.expect(pexpect.EOF)


def test_ctrl_c_leaves_the_waiting_room(world: World) -> None:
    _gated(world)
    child = pexpect.spawn(
        "ssh",
        [
            "-tt",
            *SSH_OPTS,
            "-i",
            str(world.key),
            "-p",
            str(world.port),
            "alice+linux-admin+web01@127.0.0.1",
        ],
        timeout=15,
        encoding="utf-8",
    )
    child.expect("is waiting for approval")
    child.sendcontrol("c")
    child.expect("pamcore: you left the waiting room")
    child.expect(pexpect.EOF)


def _gated(world: World) -> None:
    """The world's session ended; a new one for Linux Admin waits for carol's approval."""
    with world.core.unit() as db:
        carol = b.make_user(db, "carol")
        approve_first = b.make_profile(db, "gated", tiers=[(1, [carol], [])])
        db.scalar(select(AccessPolicy).where(AccessPolicy.name == "admins")).profile = approve_first
        end_session(world.core, db, CONSOLE, world.session_id)
    complete_ending(world.core, world.session_id, worker_name(), "test")


def test_the_end_of_input_is_not_leaving_the_waiting_room(world: World) -> None:
    """``ssh host cmd < /dev/null``: the client sends EOF at once; it waits all the same
    (past a poll round), and the command runs once the session is approved."""
    _gated(world)
    where = ["-i", str(world.key), "-p", str(world.port), "alice+linux-admin+web01@127.0.0.1"]
    client = subprocess.Popen(
        ["ssh", *SSH_OPTS, *where, "echo ran-$((6*7))"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert client.stderr is not None
        line = client.stderr.readline()
        assert "is waiting for approval by carol; waiting" in line, line
        time.sleep(2 * lobby.POLL_SECONDS)
        assert client.poll() is None, client.communicate()
        with world.core.unit() as db:
            session_id = (
                db.scalars(select(ActivitySession).order_by(ActivitySession.id)).all()[-1].id
            )
            approve_session(
                world.core, db, db.scalar(select(User).where(User.username == "carol")), session_id
            )
        assert session_id in scheduler.tick(world.core).activated
        out, err = client.communicate(timeout=15)
    finally:
        client.kill()
    assert (client.returncode, out) == (0, "ran-42\n"), err
    assert "left the waiting room" not in err


def test_forwarding_is_refused_with_a_reason_and_audited(world: World) -> None:
    """``ssh -W`` and ``ssh -L``: OpenSSH prints the proxy's reason, not a closed port (at
    its default log level, which the tests' options lower)."""
    shown = ("-o", "LogLevel=INFO")
    stdio = run_ssh(world.port, world.key, "alice+web01", opts=(*shown, "-W", "127.0.0.1:22"))
    assert stdio.returncode == 255
    assert f"administratively prohibited: {FORWARDING}" in stdio.stderr
    local = free_port()
    where = ["-i", str(world.key), "-p", str(world.port), "alice+web01@127.0.0.1"]
    tunnel = subprocess.Popen(
        ["ssh", *shown, "-N", "-L", f"{local}:127.0.0.1:22", *SSH_OPTS, *where],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(100):  # until ssh listens
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", local), 1) as s,
            ):
                assert s.recv(100) == b""  # closed: the channel was refused
                break
            time.sleep(0.05)
        else:
            pytest.fail("ssh -L never listened")
    finally:
        tunnel.terminate()
        _, err = tunnel.communicate(timeout=10)
    assert f"administratively prohibited: {FORWARDING}" in err
    refused = world.audited("connection.forwarding_refused", count=2)  # -W, then -L
    assert [(e.actor, e.target, e.details["kind"], e.details["destination"]) for e in refused] == [
        ("alice", "web01", "direct-tcpip", "127.0.0.1:22")
    ] * 2
