"""Linux actions against a REAL OpenSSH sshd on a loopback port, whose "target" is this
machine: the tests run as root (here and in CI), create accounts named ``pamt-...`` (unique
per test, so runs side by side or after a killed run never meet) and check them with
``getent``; a test removes the accounts it made, and their sudoers files, in ``finally``.
sshd allows password logins too, so an ephemeral or rotated password is proven by logging
in with it."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from pamcore_ssh.actions import _checked_name
from sqlalchemy import select

from pamcore.clock import FrozenClock
from pamcore.core import Pamcore
from pamcore.errors import ActionFailed
from pamcore.lifecycle import Status
from pamcore.model import ActivityKind, ActivitySession, AuditEvent, Credential, LoginMode, Resource
from pamcore.plugins import PluginHost
from pamcore.registry import ActionContext
from pamcore.services import scheduler
from pamcore.services.sessions import SessionRequest, create_session
from pamcore.testing import builders as b
from pamcore.testing.sshd import keygen, public_line, sshd_missing, start_sshd, stop

#: Every test here runs against the module's real sshd (the ``target`` fixture).
pytestmark = pytest.mark.e2e

PREFIX = "pamt-"
SUDOERS = Path("/etc/sudoers.d")


@dataclass(frozen=True)
class Target:
    port: int
    client_key: str
    host_key_line: str
    other_host_key_line: str


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """sshd: root by key only (the service credential), others by password."""
    if (missing := sshd_missing()) or not shutil.which("visudo"):
        pytest.skip(f"{missing or 'needs sudo'} (the target is this machine)")
    d = tmp_path_factory.mktemp("linux-target")
    for name in ("host", "client", "other"):
        keygen(d / name)
    shutil.copy(d / "client.pub", d / "authorized_keys")
    proc, port = start_sshd(
        d,
        f"HostKey {d}/host\nAuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n"
        f"PermitRootLogin prohibit-password\nPasswordAuthentication yes\n"
        f"PrintMotd no\nPrintLastLog no\n",
    )
    try:
        yield Target(
            port,
            (d / "client").read_text(),
            public_line(d / "host.pub"),
            public_line(d / "other.pub"),
        )
    finally:
        stop(proc)


@pytest.fixture
def plugin_host(installed_plugin_host: PluginHost) -> PluginHost:
    """The installed plugins: the actions come through pamcore-ssh's entry point."""
    return installed_plugin_host


def getent(name: str) -> list[str] | None:
    result = subprocess.run(["getent", "passwd", name], capture_output=True, text=True)
    return result.stdout.strip().split(":") if result.returncode == 0 else None


def groups_of(name: str) -> set[str]:
    return set(subprocess.run(["id", "-nG", name], capture_output=True, text=True).stdout.split())


def unique(name: str) -> str:
    """``name`` with a random suffix: an account name no other test or run uses."""
    return f"{name}{secrets.token_hex(3)}"


def sudoers_rules_for(account: str) -> list[Path]:
    """The files in sudoers.d that hold ``account``'s rule: its own file, or the temp file
    it is checked in before it is moved there."""
    found = []
    for path in SUDOERS.iterdir():
        with contextlib.suppress(OSError):  # another's temp file, gone meanwhile
            if account in path.read_text(errors="replace").split():
                found.append(path)
    return found


@pytest.fixture(autouse=True)
def made(core: Pamcore) -> Iterator[list[str]]:
    """The accounts a test makes: its sessions' accounts, and those it appends here before
    creating them. What is left of them goes at the end, after a failure too."""
    names: list[str] = []
    try:
        yield names
    finally:
        with core.reader() as db:
            names += [n for n in db.scalars(select(ActivitySession.login_account)) if n]
        for name in names:
            if getent(name) is not None:
                subprocess.run(["pkill", "--signal", "KILL", "-u", name], check=False)
                subprocess.run(["userdel", "--remove", name], capture_output=True, check=False)
            (SUDOERS / f"pamcore-{name}").unlink(missing_ok=True)


def can_login(port: int, user: str, password: str) -> bool:
    async def attempt() -> bool:
        try:
            async with asyncssh.connect(
                "127.0.0.1",
                port,
                username=user,
                password=password,
                known_hosts=None,  # the test's own sshd; only the password is under test
                client_keys=None,
                agent_path=None,
                preferred_auth="password",
            ) as conn:
                return (await conn.run("id -un", check=True)).stdout.strip() == user
        except asyncssh.PermissionDenied:
            return False

    return asyncio.run(attempt())


@dataclass
class Setup:
    resource_id: int
    service: dict[str, str]


def setup(core: Pamcore, target: Target, **resource_fields: object) -> Setup:
    """A resource on the test sshd and its root service credential (key in the vault)."""
    fields: dict[str, object] = {"host_key": target.host_key_line, **resource_fields}
    with core.unit() as db:
        resource = b.make_resource(db, "web01", protocols={"ssh": target.port}, **fields)
        b.make_credential(
            core, db, "web01 root", "root", private_key=target.client_key, resource=resource
        )
        return Setup(resource.id, {"service_credential": "web01 root"})


def ephemeral_session(
    core: Pamcore,
    setup: Setup,
    pre: list[tuple[str, dict[str, str]]],
    post: list[tuple[str, dict[str, str]]],
    template: str = PREFIX + "{user}-{random}",
    username: str = "alice",
) -> int:
    with core.unit() as db:
        user = b.make_user(db, username)
        activity = b.make_activity(
            db,
            "Linux Admin",
            login_mode=LoginMode.EPHEMERAL,
            pre=pre,
            post=post,
            login_template=template,
        )
        profile = b.make_profile(db, "Standard", max_duration_minutes=60)
        b.make_policy(db, "p", profile, [activity], [db.get(Resource, setup.resource_id)], [user])
        return create_session(core, db, user, SessionRequest("Linux Admin", ("web01",))).id


def state(core: Pamcore, sid: int) -> tuple[Status, str, str]:
    with core.reader() as db:
        s = db.get(ActivitySession, sid)
        assert s is not None
        return Status(s.status), s.outcome_reason, s.login_account


def session_password(core: Pamcore, sid: int) -> str:
    with core.reader() as db:
        s = db.get(ActivitySession, sid)
        assert s is not None and s.login_secret is not None
        return str(core.vault.reveal(s.login_secret))


def test_full_ephemeral_session(core: Pamcore, target: Target, clock: FrozenClock) -> None:
    """Account and sudoers rule exist during the session (the password logs in) and are
    gone, with the account's processes and home, after the end."""
    s = setup(core, target)
    sid = ephemeral_session(
        core,
        s,
        pre=[
            ("linux-create-account", {**s.service, "sudo_group": "sudo"}),
            ("linux-add-sudoers", s.service),
        ],
        post=[("linux-remove-sudoers", s.service), ("linux-remove-account", s.service)],
    )
    assert scheduler.tick(core).activated == [sid]
    status, _, account = state(core, sid)
    assert status == Status.AVAILABLE and account.startswith(PREFIX + "alice-")
    entry = getent(account)
    assert entry is not None and entry[4] == f"pamcore session {sid}"
    assert "sudo" in groups_of(account) and Path(entry[5]).is_dir()
    rule = SUDOERS / f"pamcore-{account}"
    assert rule.read_text().splitlines()[-1] == f"{account} ALL=(ALL:ALL) ALL"
    assert oct(rule.stat().st_mode & 0o777) == "0o440"
    assert subprocess.run(["visudo", "-cq"]).returncode == 0
    password = session_password(core, sid)
    assert can_login(target.port, account, password)
    assert password not in subprocess.run(["ps", "axww"], capture_output=True, text=True).stdout
    busy = subprocess.Popen(["runuser", "-u", account, "--", "sleep", "600"])

    clock.advance(minutes=61)
    assert scheduler.tick(core).expired == [sid]
    assert getent(account) is None and not Path(entry[5]).exists() and not rule.exists()
    assert busy.wait(10) != 0  # its process was ended
    assert state(core, sid)[0] == Status.EXPIRED
    with core.reader() as db:
        actions = db.scalars(select(AuditEvent.action).where(AuditEvent.session_id == sid)).all()
    assert [a for a in actions if a.startswith("linux.")] == [
        "linux.account_created",
        "linux.sudoers_added",
        "linux.sudoers_removed",
        "linux.account_removed",
    ]


def test_removing_the_account_removes_its_sudoers_rule(
    core: Pamcore, target: Target, clock: FrozenClock
) -> None:
    """An activity without ``linux-remove-sudoers`` still leaves no rule behind: the rule
    grants to a name that a later account may take."""
    s = setup(core, target)
    sid = ephemeral_session(
        core,
        s,
        pre=[("linux-create-account", s.service), ("linux-add-sudoers", s.service)],
        post=[("linux-remove-account", s.service)],
    )
    assert scheduler.tick(core).activated == [sid]
    account = state(core, sid)[2]
    assert sudoers_rules_for(account) == [SUDOERS / f"pamcore-{account}"]

    clock.advance(minutes=61)
    assert scheduler.tick(core).expired == [sid]
    assert getent(account) is None
    assert sudoers_rules_for(account) == []
    with core.reader() as db:
        actions = db.scalars(select(AuditEvent.action).where(AuditEvent.session_id == sid)).all()
    assert [a for a in actions if a.startswith("linux.")] == [
        "linux.account_created",
        "linux.sudoers_added",
        "linux.sudoers_removed",
        "linux.account_removed",
    ]


def test_an_account_that_changed_its_gecos_is_still_removed(
    core: Pamcore, target: Target, clock: FrozenClock
) -> None:
    """``chfn -r 1`` (which Debian lets a user run on their own account with CHFN_RESTRICT
    rwh) no longer keeps the account from being removed: it is known by its UID."""
    s = setup(core, target)
    sid = ephemeral_session(
        core,
        s,
        pre=[("linux-create-account", s.service)],
        post=[("linux-remove-account", s.service)],
    )
    assert scheduler.tick(core).activated == [sid]
    account = state(core, sid)[2]
    subprocess.run(["chfn", "-r", "1", account], check=True, capture_output=True)
    entry = getent(account)
    assert entry is not None and entry[4] == f"pamcore session {sid},1,,"
    with core.reader() as db:
        created = db.scalars(
            select(AuditEvent).where(
                AuditEvent.session_id == sid, AuditEvent.action == "linux.account_created"
            )
        ).one()
        assert created.details["uid"] == int(entry[2]) and created.details["created_at"]
    clock.advance(minutes=61)
    assert scheduler.tick(core).expired == [sid]
    assert getent(account) is None


def free_uid(after: int) -> int:
    uid = after + 1
    while subprocess.run(["getent", "passwd", str(uid)], capture_output=True).returncode == 0:
        uid += 1
    return uid


def test_an_account_that_cannot_be_removed_is_locked_and_audited(
    core: Pamcore, target: Target, clock: FrozenClock
) -> None:
    """The account was given another UID (as a requester with sudo could, to outlive the
    session): it is not removed, but locked, expired and its processes ended, with an alert
    in the audit log and the session FAILED."""
    s = setup(core, target)
    sid = ephemeral_session(
        core,
        s,
        pre=[("linux-create-account", s.service)],
        post=[("linux-remove-account", s.service)],
    )
    assert scheduler.tick(core).activated == [sid]
    account = state(core, sid)[2]
    password = session_password(core, sid)
    entry = getent(account)
    assert entry is not None
    uid = free_uid(int(entry[2]))
    subprocess.run(["usermod", "--uid", str(uid), account], check=True, capture_output=True)
    assert can_login(target.port, account, password)
    busy = subprocess.Popen(["runuser", "-u", account, "--", "sleep", "600"])

    clock.advance(minutes=61)
    assert scheduler.tick(core).failed == [sid]
    status, reason, _ = state(core, sid)
    assert status == Status.FAILED
    assert f"account {account} on web01 could not be removed" in reason and "locked" in reason
    assert busy.wait(10) != 0
    assert not can_login(target.port, account, password)
    shadow = subprocess.run(["getent", "shadow", account], capture_output=True, text=True)
    fields = shadow.stdout.strip().split(":")
    assert fields[1].startswith("!") and fields[7] == "0"  # locked, expired on 1 January 1970
    with core.reader() as db:
        (alert,) = db.scalars(
            select(AuditEvent).where(
                AuditEvent.session_id == sid, AuditEvent.action == "linux.account_locked"
            )
        ).all()
        assert alert.target == "web01" and alert.details["account"] == account
        assert alert.details["reason"] == f"its UID is {uid}, not {entry[2]} as created"
        assert password not in reason and password not in str(alert.details)


@pytest.mark.parametrize("name", ["pamt-x\n", "pamt x", "Pamt-x"])
def test_a_name_with_a_line_end_or_space_never_reaches_a_command(name: str) -> None:
    with pytest.raises(ActionFailed, match="is not a valid Linux name"):
        _checked_name(name, "account")


def test_the_context_an_action_gets_never_shows_the_ephemeral_password() -> None:
    nothing: Any = None
    ctx = ActionContext(
        core=nothing,
        session=nothing,
        resource=nothing,
        login_account="pamt-x",
        login_password="Ephemeral-pw-9q",
        params={},
        now=dt.datetime(2025, 1, 1),
        audit=print,
    )
    assert "pamt-x" in repr(ctx) and "Ephemeral-pw-9q" not in repr(ctx)


def test_remove_is_idempotent_and_create_reuses_its_own_account(
    core: Pamcore, target: Target
) -> None:
    s = setup(core, target)
    sid = ephemeral_session(
        core,
        s,
        pre=[("linux-create-account", s.service)],
        post=[("linux-remove-account", s.service)],
    )
    scheduler.tick(core)
    account = state(core, sid)[2]
    actions = core.hooks.actions()
    with core.reader() as db:
        session = db.get(ActivitySession, sid)
        ctx = ActionContext(
            core=core,
            session=session,
            resource=session.resources[0],
            login_account=account,
            login_password=session_password(core, sid),
            params=s.service,
            now=core.now(),
            audit=lambda action, **details: None,
        )
        actions["linux-create-account"].run(ctx)  # again: same session's account, kept
        assert getent(account) is not None
        actions["linux-remove-account"].run(ctx)
        actions["linux-remove-account"].run(ctx)  # already gone: fine
        assert getent(account) is None


def test_a_bad_sudoers_rule_fails_the_session_and_leaves_nothing(
    core: Pamcore, target: Target
) -> None:
    s = setup(core, target)
    sid = ephemeral_session(
        core,
        s,
        pre=[
            ("linux-create-account", s.service),
            ("linux-add-sudoers", {**s.service, "rule": "ALL=(ALL NOPASSWD: ALL"}),
        ],
        post=[("linux-remove-sudoers", s.service), ("linux-remove-account", s.service)],
    )
    assert scheduler.tick(core).failed == [sid]
    status, reason, account = state(core, sid)
    assert status == Status.FAILED
    assert reason == (
        "pre-session action 'linux-add-sudoers' failed on web01: adding the sudoers rule "
        "failed on web01: visudo rejected the rule"
    )
    assert getent(account) is None  # created, then removed by the cleanup
    assert sudoers_rules_for(account) == []  # no rule file, no temp file either


def test_a_missing_group_fails_before_anything_is_created(core: Pamcore, target: Target) -> None:
    s = setup(core, target)
    sid = ephemeral_session(
        core,
        s,
        pre=[("linux-create-account", {**s.service, "sudo_group": "pamt-nogroup"})],
        post=[("linux-remove-account", s.service)],
    )
    assert scheduler.tick(core).failed == [sid]
    _status, reason, account = state(core, sid)
    assert (
        "creating the account failed on web01: useradd: group 'pamt-nogroup' does not exist"
        in reason
    )
    assert getent(account) is None


def test_a_foreign_account_is_never_taken_over_or_removed(
    core: Pamcore, target: Target, made: list[str]
) -> None:
    zed = unique("zed")
    made.append(PREFIX + zed)
    subprocess.run(["useradd", "--comment", "a real person", PREFIX + zed], check=True)
    s = setup(core, target)
    sid = ephemeral_session(
        core,
        s,
        pre=[("linux-create-account", s.service)],
        post=[("linux-remove-account", s.service)],
        template=PREFIX + "{user}",
        username=zed,
    )
    assert scheduler.tick(core).failed == [sid]
    assert "already exists on web01 and is not this session's" in state(core, sid)[1]
    entry = getent(PREFIX + zed)
    assert entry is not None and entry[4] == "a real person"  # cleanup refused to delete it


def test_host_key_mismatch_refuses_before_any_command(core: Pamcore, target: Target) -> None:
    s = setup(core, target, host_key=target.other_host_key_line)
    sid = ephemeral_session(
        core,
        s,
        pre=[("linux-create-account", s.service)],
        post=[("linux-remove-account", s.service)],
    )
    assert scheduler.tick(core).failed == [sid]
    _status, reason, account = state(core, sid)
    assert "the host key of web01 changed" in reason
    assert getent(account) is None
    with core.reader() as db:
        refused = db.scalars(
            select(AuditEvent).where(AuditEvent.action == "ssh.host_key_refused")
        ).all()
        assert refused and refused[0].details["offered"].startswith("SHA256:")


def test_trust_on_first_use_pins_the_key(core: Pamcore, target: Target) -> None:
    s = setup(core, target, host_key=None, trust_on_first_use=True)
    sid = ephemeral_session(
        core,
        s,
        pre=[("linux-create-account", s.service)],
        post=[("linux-remove-account", s.service)],
    )
    assert scheduler.tick(core).activated == [sid]
    with core.reader() as db:
        assert db.get(Resource, s.resource_id).host_key == target.host_key_line


def test_rotate_password_after_the_session(
    core: Pamcore, target: Target, clock: FrozenClock, made: list[str]
) -> None:
    account = unique(PREFIX + "app")
    made.append(account)
    old = "Old-Passw0rd-for-app"
    subprocess.run(["useradd", "--create-home", account], check=True)
    subprocess.run(["chpasswd"], input=f"{account}:{old}\n", text=True, check=True)
    s = setup(core, target)
    with core.unit() as db:
        resource = db.get(Resource, s.resource_id)
        cred = b.make_credential(core, db, "web01 app", account, old, resource=resource)
        alice = b.make_user(db, "alice")
        activity = b.make_activity(
            db,
            "Check out app",
            kind=ActivityKind.CREDENTIAL,
            credential=cred,
            post=[("linux-rotate-password", s.service)],
        )
        profile = b.make_profile(db, "Standard", max_duration_minutes=60)
        b.make_policy(db, "p", profile, [activity], [resource], [alice])
        sid = create_session(core, db, alice, SessionRequest("Check out app", ("web01",))).id
    scheduler.tick(core)
    assert can_login(target.port, account, old)
    clock.advance(minutes=61)
    assert scheduler.tick(core).expired == [sid]
    with core.reader() as db:
        row = db.scalar(select(Credential).where(Credential.name == "web01 app"))
        new = str(core.vault.reveal(row.password_secret))
        assert row.rotated_at is not None
        event = db.scalar(select(AuditEvent).where(AuditEvent.action == "credential.rotated"))
        assert event.details == {"credential": "web01 app"}
    assert new != old
    assert can_login(target.port, account, new) and not can_login(target.port, account, old)


def test_unknown_service_credential_is_a_clear_failure(core: Pamcore, target: Target) -> None:
    s = setup(core, target)
    sid = ephemeral_session(
        core,
        s,
        pre=[("linux-create-account", {"service_credential": "nope"})],
        post=[],
    )
    assert scheduler.tick(core).failed == [sid]
    assert state(core, sid)[1].endswith("no credential named 'nope'")
