"""End to end with real peers: OpenSSH ``ssh`` through the pamcore proxy to the IOS-like
device and to OpenSSH ``sshd``, both offering only legacy algorithms. Not opted in, the user
reads the diagnosis; opted in, a shell, a Legacy SSH badge and an audit event; the enable
secret is typed for the user and kept out of the recording; the rotation action changes the
device's saved secret. Without this plugin installed the core and modern resources work and
the diagnosis names the plugin."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pexpect
import pytest
from cisco_peers import IosDevice, LegacySshd
from pamcore_ssh.listener import ProxyListener
from sqlalchemy import create_engine, select

from pamcore.clock import FrozenClock
from pamcore.core import Pamcore
from pamcore.errors import ValidationError
from pamcore.lifecycle import Status
from pamcore.model import (
    ActivitySession,
    AuditEvent,
    Base,
    Credential,
    LoginMode,
    Platform,
    Recording,
    UserKey,
)
from pamcore.plugins import PluginHost, build_plugin_host
from pamcore.services import scheduler
from pamcore.services.common import CONSOLE, worker_name
from pamcore.services.ending import complete_ending
from pamcore.services.inventory import set_setting
from pamcore.services.sessions import SessionRequest, create_session, end_session
from pamcore.testing import T0, LoopThread, audited, make_core
from pamcore.testing import builders as b
from pamcore.testing.sshd import CLIENT_OPTS, keygen, run_ssh
from pamcore.web.app import create_app

ADMIN_PW = "Admin-pw-initial-1"
USER_PW = "Alice-cisco-pw-1"


@dataclass
class World:
    core: Pamcore
    port: int
    key: Path
    tmp: Path
    sessions: dict[str, int]
    devices: dict[str, IosDevice]

    def ssh(
        self, login: str, *command: str, opts: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        return run_ssh(self.port, self.key, login, *command, opts=opts, timeout=60)

    def shell(self, login: str) -> pexpect.spawn:
        return pexpect.spawn(
            "ssh",
            ["-tt", *CLIENT_OPTS, "-i", str(self.key), "-p", str(self.port), f"{login}@127.0.0.1"],
            timeout=20,
            encoding="utf-8",
        )

    def opt_in(
        self, resource: str, key: str = "legacy_algorithms", value: str = "cisco-legacy"
    ) -> None:
        """As ``pamcore resources set-setting`` does."""
        with self.core.unit() as db:
            set_setting(self.core, db, CONSOLE, resource, "cisco_legacy", key, value)

    def audited(self, action: str, timeout: float = 5) -> list[AuditEvent]:
        return audited(self.core, action, timeout)


def without_this_plugin() -> PluginHost:
    """The plugin host as if pamcore-cisco-legacy were uninstalled: its entry point is not
    loaded, everything else is."""
    host = PluginHost(strict=True)
    host.load_defaults()
    host.pm.set_blocked("cisco_legacy")
    host.load_entry_points()
    return host


def _world(
    tmp: Path,
    legacy_sshd: LegacySshd,
    ios_devices: Callable[[bool], IosDevice],
    plugins: PluginHost,
    proxy_wide: list[str] | None = None,
) -> Iterator[World]:
    if not shutil.which("ssh") or os.geteuid() != 0:
        pytest.skip("needs root and openssh-client")
    url = f"sqlite:///{tmp / 'e2e.db'}"
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    (tmp / "instance").mkdir()
    core = make_core(tmp / "instance", url, FrozenClock(T0), plugins)
    if proxy_wide is not None:
        core.config.plugin_settings["cisco_legacy"] = {"resources": proxy_wide}
    sw01, modern = ios_devices(True), ios_devices(False)
    for device in (sw01, modern):
        device.running["admin"] = ADMIN_PW
    user_key = tmp / "alice_key"
    keygen(user_key)
    sessions: dict[str, int] = {}
    with core.unit() as db:
        alice = b.make_user(db, "alice", password=USER_PW)
        fp = subprocess.run(
            ["ssh-keygen", "-l", "-f", f"{user_key}.pub"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[1]
        db.add(
            UserKey(
                user=alice,
                name="laptop",
                public_key=(tmp / "alice_key.pub").read_text(),
                fingerprint=fp,
            )
        )
        profile = b.make_profile(db, "standard", max_duration_minutes=60)
        for name, device in (("sw01", sw01), ("modern01", modern)):
            resource = b.make_resource(
                db,
                name,
                protocols={"ssh": device.port},
                platform=Platform.CISCO_IOS,
                host_key=device.host_key_line,
                settings={"cisco_legacy": {"enable_credential": f"{name} enable"}}
                if name == "sw01"
                else {},
            )
            admin = b.make_credential(
                core, db, f"{name} admin", "admin", password=ADMIN_PW, resource=resource
            )
            b.make_credential(
                core,
                db,
                f"{name} enable",
                "enable",
                password=device.enable_secret,
                resource=resource,
            )
            activity = b.make_activity(
                db,
                f"{name} IOS",
                login_mode=LoginMode.MANAGED,
                credential=admin,
                post=[("cisco-ios-rotate-secret", {"service_credential": f"{name} admin"})],
            )
            b.make_policy(db, f"{name} admins", profile, [activity], [resource], [alice])
            sessions[name] = create_session(
                core, db, alice, SessionRequest(f"{name} IOS", (name,))
            ).id
        linux = b.make_resource(
            db, "legacy01", protocols={"ssh": legacy_sshd.port}, host_key=legacy_sshd.dsa_key_line
        )
        root = b.make_credential(
            core,
            db,
            "legacy01 root",
            "root",
            private_key=legacy_sshd.client_key.read_text(),
            resource=linux,
        )
        activity = b.make_activity(db, "Linux Admin", login_mode=LoginMode.MANAGED, credential=root)
        b.make_policy(db, "linux admins", profile, [activity], [linux], [alice])
        sessions["legacy01"] = create_session(
            core, db, alice, SessionRequest("Linux Admin", ("legacy01",))
        ).id
    assert set(scheduler.tick(core).activated) == set(sessions.values())
    loop = LoopThread()
    listener = ProxyListener(core, "127.0.0.1", 0)
    loop.run(listener.start())
    yield World(
        core, int(listener.port), user_key, tmp, sessions, {"sw01": sw01, "modern01": modern}
    )
    loop.run(listener.stop())
    loop.close()
    core.dispose()


@pytest.fixture
def world(
    tmp_path: Path, legacy_sshd: LegacySshd, ios_devices: Callable[[bool], IosDevice]
) -> Iterator[World]:
    """The installed plugins; legacy01 is on the proxy-wide list, sw01 is not opted in."""
    yield from _world(
        tmp_path, legacy_sshd, ios_devices, build_plugin_host(strict=True), ["legacy*"]
    )


@pytest.fixture
def uninstalled(
    tmp_path: Path, legacy_sshd: LegacySshd, ios_devices: Callable[[bool], IosDevice]
) -> Iterator[World]:
    yield from _world(tmp_path, legacy_sshd, ios_devices, without_this_plugin())


def test_not_opted_in_the_user_reads_what_to_do(world: World) -> None:
    refused = world.ssh("alice+sw01", "show version")
    assert refused.returncode != 0
    said = refused.stderr
    assert said.startswith("pamcore: ssh: no common algorithm for key exchange with sw01; ")
    assert "client offered: [mlkem768x25519-sha256 " in said
    assert "server offered: [diffie-hellman-group1-sha1]." in said
    assert said.rstrip().endswith(
        "An administrator can allow legacy algorithms for this resource only: "
        "pamcore resources set-setting sw01 cisco_legacy.legacy_algorithms cisco-legacy"
    )
    closed = [
        e for e in world.audited("connection.closed") if e.session_id == world.sessions["sw01"]
    ]
    assert "server offered: [diffie-hellman-group1-sha1]" in closed[0].details["reason"]
    assert not world.audited("connection.legacy_algorithms", timeout=0)


def test_opted_in_shell_with_enable_secret_badge_and_audit(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    device = world.devices["sw01"]
    world.opt_in("sw01")
    child = world.shell("alice+sw01")
    child.expect("Router>")
    child.sendline("show version")
    child.expect(r"Version 12\.2\(55\)SE")
    child.expect("Router>")
    child.sendline("enable")
    child.expect("Password:")
    child.expect("Router#")  # the proxy answered with the vaulted secret
    child.sendline("exit")
    child.expect(pexpect.EOF)
    assert device.enable_attempts == [True]
    (event,) = world.audited("connection.legacy_algorithms")
    assert event.session_id == world.sessions["sw01"] and event.target == "sw01"
    assert {k: event.details[k] for k in ("kex", "cipher", "mac", "host_key", "legacy")} == {
        "kex": "diffie-hellman-group1-sha1",
        "cipher": "aes128-cbc",
        "mac": "hmac-sha1",
        "host_key": "ssh-rsa",
        "legacy": "diffie-hellman-group1-sha1,aes128-cbc",
    }
    assert len(world.audited("recording.saved")) == 1
    with world.core.reader() as db:
        cast = Path(db.scalars(select(Recording)).one().path).read_bytes()
    assert b"Router#" in cast and b"Password:" in cast
    assert device.enable_secret.encode() not in cast
    assert "ssh open: alice to sw01 as admin" in caplog.text  # the proxy's log was captured
    assert device.enable_secret not in caplog.text
    app = create_app(world.core, {"TESTING": True, "WTF_CSRF_ENABLED": False})
    client = app.test_client()
    assert client.post("/login", data={"username": "alice", "password": USER_PW}).status_code == 303
    detail = client.get(f"/sessions/{world.sessions['sw01']}").get_data(as_text=True)
    assert 'class="badge-legacy"' in detail
    assert (
        "key exchange <code>diffie-hellman-group1-sha1</code>, cipher <code>aes128-cbc</code>"
        in detail
    )
    table = client.get("/table/active").get_data(as_text=True)
    row = table.split(f'id="session-{world.sessions["sw01"]}"')[1].split("</tr>")[0]
    assert "Legacy SSH" in row
    other = table.split(f'id="session-{world.sessions["modern01"]}"')[1].split("</tr>")[0]
    assert "Legacy SSH" not in other


@pytest.mark.parametrize("onward", ["ssh -l mallory 192.0.2.7", "telnet 192.0.2.7"])
def test_the_enable_secret_never_reaches_a_host_reached_onward(world: World, onward: str) -> None:
    """The device's own ``enable`` is answered; a host reached from it that shows the same
    ``Router>`` and asks ``Password:`` after ``enable`` gets only what the user types."""
    device = world.devices["sw01"]
    world.opt_in("sw01")
    child = world.shell("alice+sw01")
    child.expect("Router>")
    child.sendline("enable")
    child.expect("Router#")  # answered: the device pamcore connected to
    child.sendline(onward)
    child.expect("Open")
    child.expect("Router>")
    child.sendline("enable")
    child.expect("Password:")
    child.sendline("my-guess")
    child.expect("Access denied")
    child.sendline("exit")
    child.expect("closed by foreign host")
    child.expect("Router#")
    child.sendline("exit")
    child.expect(pexpect.EOF)
    assert device.enable_attempts == [True]
    assert device.onward_answers == ["my-guess"]


def test_the_user_facing_side_stays_modern(world: World) -> None:
    """Opting a resource in never adds legacy algorithms to the proxy's own listener."""
    world.opt_in("sw01")
    refused = world.ssh(
        "alice+sw01",
        "show version",
        opts=("-o", "KexAlgorithms=diffie-hellman-group1-sha1", "-o", "LogLevel=INFO"),
    )
    assert refused.returncode == 255
    assert "no matching key exchange method found" in refused.stderr


def test_proxy_wide_list_opts_the_legacy_sshd_in_with_a_dsa_host_key(world: World) -> None:
    result = world.ssh("alice+legacy01", "echo legacy-$((6*7))")
    assert (result.returncode, result.stdout) == (0, "legacy-42\n"), result.stderr
    (event,) = world.audited("connection.legacy_algorithms")
    assert (event.details["kex"], event.details["cipher"], event.details["host_key"]) == (
        "diffie-hellman-group1-sha1",
        "aes128-cbc",
        "ssh-dss",
    )


def test_rotation_changes_the_secret_the_device_saved(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    device = world.devices["sw01"]
    world.opt_in("sw01")
    session_id = world.sessions["sw01"]
    with world.core.unit() as db:
        end_session(world.core, db, CONSOLE, session_id)
    complete_ending(world.core, session_id, worker_name(), "test")
    with world.core.reader() as db:
        row = db.scalar(select(Credential).where(Credential.name == "sw01 admin"))
        assert row is not None and row.password_secret is not None
        new = world.core.vault.reveal(row.password_secret)
    assert new != ADMIN_PW
    assert "Opening SSH connection to 127.0.0.1" in caplog.text  # asyncssh's log was captured
    assert new not in caplog.text and device.enable_secret not in caplog.text
    assert device.startup() == {"admin": new} == device.running
    assert device.enable_attempts == [True]
    (rotated,) = world.audited("credential.rotated")
    assert rotated.target == "sw01"
    actions = [e.details.get("legacy") for e in world.audited("connection.legacy_algorithms")]
    assert actions == ["diffie-hellman-group1-sha1,aes128-cbc"]  # the action's own connection


def test_without_the_plugin_the_core_and_modern_resources_work(uninstalled: World) -> None:
    world = uninstalled
    refused = world.ssh("alice+sw01", "show version")
    assert refused.returncode != 0
    assert "no common SSH algorithms with sw01 (127.0.0.1 port" in refused.stderr
    assert (
        "install the pamcore-cisco-legacy plugin and enable it for this resource" in refused.stderr
    )
    modern = world.ssh("alice+modern01", "show version")
    assert "Version 12.2(55)SE" in modern.stdout
    with world.core.unit() as db, pytest.raises(ValidationError, match="is not a known setting"):
        set_setting(
            world.core, db, CONSOLE, "sw01", "cisco_legacy", "legacy_algorithms", "cisco-legacy"
        )
    assert "cisco_legacy" not in {i.name for i in world.core.plugins.plugin_infos()}


def test_a_wrong_enable_secret_fails_the_rotation_clearly(world: World) -> None:
    device = world.devices["sw01"]
    device.enable_secret = "Not-the-vaulted-one-3"
    world.opt_in("sw01")
    session_id = world.sessions["sw01"]
    with world.core.unit() as db:
        end_session(world.core, db, CONSOLE, session_id)
    assert complete_ending(world.core, session_id, worker_name(), "test") == Status.FAILED
    with world.core.reader() as db:
        outcome = db.get(ActivitySession, session_id).outcome_reason  # type: ignore[union-attr]
    assert outcome == (
        "post-session action 'cisco-ios-rotate-secret' failed on sw01: "
        "sw01 refused the enable secret"
    )
    assert device.enable_attempts == [False]
    assert device.startup() == {} and device.running == {"admin": ADMIN_PW}
    assert not world.audited("credential.rotated", timeout=0)
