"""End to end with real peers: OpenSSH ``ssh``/``sftp``/``scp`` and PuTTY's ``plink``
through the proxy to OpenSSH ``sshd`` (root, key injected from the vault)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pexpect
import pyotp
import pytest
from pamcore_ssh.hostkeys import fingerprint, proxy_host_key
from pamcore_ssh.listener import ProxyListener
from pamcore_ssh.server import FORWARDING
from sqlalchemy import create_engine, select
from ssh_peers import Sshd, run_listener

from pamcore.clock import FrozenClock
from pamcore.core import Pamcore
from pamcore.model import (
    AccessPolicy,
    Activity,
    ActivitySession,
    AuditEvent,
    Base,
    LoginMode,
    Recording,
    Resource,
    User,
    UserKey,
)
from pamcore.plugins import PluginHost, build_plugin_host
from pamcore.services import scheduler
from pamcore.services.approvals import approve_session
from pamcore.services.common import CONSOLE, worker_name
from pamcore.services.ending import complete_ending
from pamcore.services.sessions import SessionRequest, create_session, end_session
from pamcore.services.twofactor import confirm_enrolment, start_enrolment
from pamcore.testing import T0, LoopThread, audited, make_core
from pamcore.testing import builders as b
from pamcore.testing.contract import closed_port as free_port
from pamcore.testing.sshd import CLIENT_OPTS, run_ssh
from pamcore_ssh import lobby

PASSWORD = "E2e-alice-pw-1"
#: Typed at a target's prompt; must never reach a recording.
TYPED_SECRET = "Typed-at-target-7f3q"
SSH_OPTS = CLIENT_OPTS


@dataclass
class World:
    core: Pamcore
    clock: FrozenClock
    port: int
    key: Path
    session_id: int
    tmp: Path
    sshd_key: str

    def ssh(
        self, login: str, *command: str, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        return run_ssh(self.port, self.key, login, *command, timeout=timeout)

    def session(self) -> ActivitySession:
        with self.core.reader() as db:
            session = db.get(ActivitySession, self.session_id)
            assert session is not None
            db.expunge(session)
            return session

    def audit_actions(self) -> list[str]:
        with self.core.reader() as db:
            return [e.action for e in db.scalars(select(AuditEvent).order_by(AuditEvent.id))]

    def audited(self, action: str, timeout: float = 5) -> list[AuditEvent]:
        """Events of one kind, waiting for the first (the proxy audits asynchronously)."""
        return audited(self.core, action, timeout)


@pytest.fixture
def world(tmp_path: Path, sshd: Sshd) -> Iterator[World]:
    if not shutil.which("ssh"):
        pytest.skip("needs openssh-client")
    url = f"sqlite:///{tmp_path / 'e2e.db'}"
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    (tmp_path / "instance").mkdir()
    clock = FrozenClock(T0)
    core = make_core(tmp_path / "instance", url, clock, build_plugin_host(strict=True))
    user_key = tmp_path / "alice_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(user_key)], check=True)
    fp = subprocess.run(
        ["ssh-keygen", "-l", "-f", f"{user_key}.pub"], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    with core.unit() as db:
        alice = b.make_user(db, "alice", password=PASSWORD)
        db.add(
            UserKey(
                user=alice,
                name="laptop",
                public_key=(tmp_path / "alice_key.pub").read_text(),
                fingerprint=fp,
            )
        )
        web01 = b.make_resource(
            db, "web01", protocols={"ssh": sshd.port}, host_key=sshd.host_key_line
        )
        b.make_resource(db, "db01", protocols={"ssh": sshd.port}, host_key=sshd.host_key_line)
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
    listener = ProxyListener(core, "127.0.0.1", 0)
    port = run_listener(loop, listener)
    yield World(core, clock, port, user_key, session_id, tmp_path, sshd.client_key.read_text())
    loop.run(listener.stop())
    loop.close()
    core.dispose()


def test_exec_exit_codes_stderr_and_stdin_eof(world: World) -> None:
    result = world.ssh("alice+linux-admin+web01", "echo hello; echo oops >&2; exit 7")
    assert (result.returncode, result.stdout, result.stderr) == (7, "hello\n", "oops\n")
    piped = subprocess.run(
        [
            "ssh",
            *SSH_OPTS,
            "-i",
            str(world.key),
            "-p",
            str(world.port),
            "alice+web01@127.0.0.1",
            "wc -c",
        ],
        input="twelve bytes",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert piped.stdout.strip() == "12"
    assert world.ssh("alice", "whoami").stdout == "root\n"  # the menu's only choice
    actions = world.audit_actions()
    assert "connection.opened" in actions and "connection.closed" in actions
    for _ in range(50):  # the proxy records the close asynchronously
        if world.session().status == "available":
            break
        time.sleep(0.1)
    assert world.session().status == "available"


def test_plink_with_password(world: World) -> None:
    if not shutil.which("plink"):
        pytest.skip("needs putty-tools")
    proxy_key = fingerprint(proxy_host_key(world.core))  # created at start, kept in the vault
    result = subprocess.run(
        [
            "plink",
            "-batch",
            "-ssh",
            "-pw",
            PASSWORD,
            "-P",
            str(world.port),
            "-hostkey",
            proxy_key,
            "alice+Linux-Admin+web01@127.0.0.1",
            "echo plink-ok; exit 3",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 3, result.stderr
    assert "plink-ok" in result.stdout


def test_sftp_and_scp_round_trip(world: World) -> None:
    data = world.tmp / "blob"
    data.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    remote = f"/tmp/pamcore-e2e-{os.getpid()}"
    opts = [*SSH_OPTS, "-i", str(world.key), "-P", str(world.port)]
    login = "alice+web01@127.0.0.1"
    subprocess.run(["scp", *opts, str(data), f"{login}:{remote}.scp"], check=True, timeout=60)
    subprocess.run(
        ["scp", *opts, f"{login}:{remote}.scp", str(world.tmp / "back.scp")], check=True, timeout=60
    )
    batch = world.tmp / "batch"
    batch.write_text(
        f"put {data} {remote}.sftp\nget {remote}.sftp {world.tmp / 'back.sftp'}\n"
        f"rm {remote}.sftp\nrm {remote}.scp\n"
    )
    subprocess.run(
        ["sftp", *opts, "-b", str(batch), login], check=True, timeout=60, capture_output=True
    )
    for name in ("back.scp", "back.sftp"):
        assert subprocess.run(["cmp", str(data), str(world.tmp / name)]).returncode == 0


def _shell(world: World) -> pexpect.spawn:
    child = pexpect.spawn(
        "ssh",
        ["-tt", *SSH_OPTS, "-i", str(world.key), "-p", str(world.port), "alice+web01@127.0.0.1"],
        timeout=15,
        encoding="utf-8",
    )
    child.sendline("export PS1='PR''OMPT> '")
    child.expect("PROMPT> ")
    return child


def test_pty_ctrl_x_passes_outside_the_window_and_extends_inside(world: World) -> None:
    child = _shell(world)
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
    child = _shell(world)
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
            child = _shell(world)
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
    child = _shell(world)
    ends = world.session().ends_at
    assert ends is not None
    world.clock.now = ends + dt.timedelta(seconds=1)
    child.expect("session end time reached; closing the connection", timeout=4)
    child.expect(pexpect.EOF, timeout=3)


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
    refused = world.audited("connection.forwarding_refused")
    assert [(e.actor, e.target, e.details["kind"], e.details["destination"]) for e in refused] == [
        ("alice", "web01", "direct-tcpip", "127.0.0.1:22")
    ] * 2


def test_recording_has_output_resizes_and_notices_but_no_typed_password(world: World) -> None:
    assert world.ssh("alice+web01", "echo not-a-terminal").stdout == "not-a-terminal\n"
    child = _shell(world)
    child.sendline("read -s -p 'secret: ' X; echo; echo done-$((6*7)) ${#X}")
    child.expect("secret: ")
    child.sendline(TYPED_SECRET)
    child.expect(f"done-42 {len(TYPED_SECRET)}")  # the target got it; -s: it did not echo
    child.setwinsize(33, 101)
    child.sendline("stty size")
    child.expect("33 101")
    ends = world.session().ends_at
    assert ends is not None
    world.clock.now = ends - dt.timedelta(minutes=4)
    child.expect("session ends in 4 minutes", timeout=5)
    child.sendline("exit")
    child.expect(pexpect.EOF)
    (saved,) = world.audited("recording.saved")  # one: exec without a terminal is not recorded
    with world.core.reader() as db:
        recording = db.scalars(select(Recording)).one()
        db.expunge(recording)
    cast = Path(recording.path)
    folder = world.tmp / "instance" / "recordings" / f"session-{world.session_id}"
    exec_connection, shell_connection = (
        e.details["connection"] for e in world.audited("connection.opened")
    )
    assert exec_connection != shell_connection  # the exec's id was not reused
    assert cast.parent == folder and cast.name == f"{shell_connection}-1.cast"
    assert (folder.stat().st_mode & 0o777, cast.stat().st_mode & 0o777) == (0o700, 0o600)
    raw = cast.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    assert saved.details["sha256"] == recording.sha256 == digest
    assert recording.size_bytes == len(raw)
    header, *events = [json.loads(line) for line in raw.decode().splitlines()]
    assert (header["version"], header["width"], header["height"]) == (2, 80, 24)
    assert {code for _, code, _ in events} == {"o", "r"}
    output = "".join(data for _, code, data in events if code == "o")
    assert "secret: " in output and "done-42" in output and "33 101" in output
    assert "session ends in 4 minutes" in output  # the proxy's notice
    assert [data for _, code, data in events if code == "r"] == ["101x33"]
    assert TYPED_SECRET.encode() not in raw
    times = [t for t, _, _ in events]
    assert times == sorted(times)


def test_a_recording_that_cannot_start_is_audited_and_the_shell_still_works(world: World) -> None:
    folder = world.tmp / "instance" / "recordings" / f"session-{world.session_id}"
    folder.mkdir(parents=True, mode=0o755)
    folder.chmod(0o755)  # open to others: the recorder refuses it
    child = _shell(world)
    child.sendline("echo still-$((6*7))")
    child.expect("still-42")
    child.sendline("exit")
    child.expect(pexpect.EOF)
    (failed,) = world.audited("recording.failed")
    assert "is open to other users" in failed.details["reason"]
    assert not world.audited("recording.saved", timeout=0)


class _Answers(asyncssh.SSHClient):
    """Answers keyboard-interactive prompts from a table, keeping prompts and banners."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.prompts: list[str] = []
        self.banners: list[str] = []

    def auth_banner_received(self, msg: str, lang: str) -> None:
        self.banners.append(msg)

    def kbdint_auth_requested(self) -> str:
        return ""  # no submethods: the server chooses (RFC 4256 §3.1)

    def kbdint_challenge_received(
        self, name: str, instructions: str, lang: str, prompts: list[tuple[str, bool]]
    ) -> list[str]:
        self.prompts += [prompt for prompt, _echo in prompts]
        return [self.answers[prompt] for prompt, _echo in prompts]


def _sign_in(world: World, method: str, code: str = "") -> tuple[str | None, _Answers]:
    """``whoami`` through the proxy signing in by ``method`` only; ``None`` when refused."""
    client = _Answers({"Password: ": PASSWORD, "Verification code: ": code})

    async def go() -> str | None:
        try:
            async with asyncssh.connect(
                "127.0.0.1",
                world.port,
                username="alice+web01",
                known_hosts=None,
                client_factory=lambda: client,
                preferred_auth=method,
                password=PASSWORD if method == "password" else None,  # else: the table
                client_keys=None,
                agent_path=None,
            ) as conn:
                return str((await conn.run("whoami", check=False)).stdout)
        except asyncssh.PermissionDenied:
            return None

    return asyncio.run(go()), client


def test_a_totp_user_signs_in_by_keyboard_interactive_with_a_code(world: World) -> None:
    out, client = _sign_in(world, "keyboard-interactive")
    assert (out, client.prompts) == ("root\n", ["Password: "])  # no TOTP: the password only
    with world.core.unit() as db:
        alice = db.scalar(select(User).where(User.username == "alice"))
        enrolment = start_enrolment(world.core, db, alice)
        code = pyotp.TOTP(enrolment.secret).at(world.clock.now)
        confirm_enrolment(world.core, db, alice, enrolment.secret_id, code)
    out, client = _sign_in(world, "password")
    assert out is None
    assert "pamcore: this account also needs a verification code" in "".join(client.banners)
    out, client = _sign_in(
        world, "keyboard-interactive", code="000000" if code != "000000" else "1"
    )
    assert out is None and "pamcore: wrong or expired code" in "".join(client.banners)
    wrong = [e for e in world.audited("auth.failed") if e.details["reason"].startswith("wrong or")]
    assert len(wrong) == 3  # a retrying client is stopped before it locks the account
    # The enrolment's code is spent (RFC 6238 §5.2: no replay); the next step's code works.
    world.clock.advance(seconds=30)
    code = pyotp.TOTP(enrolment.secret).at(world.clock.now)
    out, client = _sign_in(world, "keyboard-interactive", code=code)
    assert (out, client.prompts) == ("root\n", ["Password: ", "Verification code: "])
    assert "auth.second_factor" in world.audit_actions()
