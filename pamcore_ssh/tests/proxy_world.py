"""What the SSH proxy's end-to-end tests share: a core with alice, web01 and db01 on the
real ``sshd`` target and an Available session, the proxy listener on a free port, and a
shell through it with the real OpenSSH client (the ``world`` fixture is in conftest.py)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pexpect
from pamcore_ssh.listener import ProxyListener
from sqlalchemy import create_engine, select
from ssh_peers import Sshd, run_listener

from pamcore.clock import FrozenClock
from pamcore.core import Pamcore
from pamcore.model import (
    ActivitySession,
    AuditEvent,
    Base,
    LoginMode,
    UserKey,
)
from pamcore.plugins import build_plugin_host
from pamcore.services import scheduler
from pamcore.services.sessions import SessionRequest, create_session
from pamcore.testing import T0, LoopThread, audited, make_core
from pamcore.testing import builders as b
from pamcore.testing.sshd import CLIENT_OPTS, run_ssh

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

    def audited(self, action: str, timeout: float = 5, count: int = 1) -> list[AuditEvent]:
        """Events of one kind, waiting for ``count`` (the proxy audits asynchronously)."""
        return audited(self.core, action, timeout, count)


@contextlib.contextmanager
def proxy_world(tmp_path: Path, sshd: Sshd) -> Iterator[World]:
    """Everything the tests connect through; stopped and disposed afterwards."""
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


def shell(world: World) -> pexpect.spawn:
    child = pexpect.spawn(
        "ssh",
        ["-tt", *SSH_OPTS, "-i", str(world.key), "-p", str(world.port), "alice+web01@127.0.0.1"],
        timeout=15,
        encoding="utf-8",
    )
    child.sendline("export PS1='PR''OMPT> '")
    child.expect("PROMPT> ")
    return child
