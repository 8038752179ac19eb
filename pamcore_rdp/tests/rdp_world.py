"""A pamcore instance with the RDP listener running, for the end-to-end tests of the front,
the prompt and the redirection: alice may use ``win01`` (xrdp on loopback, vaulted account
``rdptest``) through the activity ``Windows Admin`` (Available) or ``Audit`` (needs
carol's approval)."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pamcore_rdp.proxy.listener import RdpListener
from rdp_targets import XRDP_USER, XrdpTarget
from sqlalchemy import create_engine, select

from pamcore.clock import FrozenClock
from pamcore.core import Pamcore
from pamcore.model import ActivitySession, AuditEvent, Base, LoginMode, Platform, Role
from pamcore.plugins import build_plugin_host
from pamcore.services import scheduler
from pamcore.services.inventory import set_setting
from pamcore.services.sessions import SessionRequest, create_session
from pamcore.testing import T0, LoopThread, make_core
from pamcore.testing import builders as b

PASSWORD = "Alice-rdp-Pw1!"
LOGIN = "alice+Windows-Admin+win01"


@dataclass
class RdpWorld:
    core: Pamcore
    clock: FrozenClock
    listener: RdpListener
    port: int
    session_id: int
    tmp: Path
    logs: list[str] = field(default_factory=list)

    def audit(self, action: str, timeout: float = 8.0, count: int = 1) -> list[AuditEvent]:
        """Events of one kind, waiting for ``count`` (the proxy audits asynchronously)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.core.reader() as db:
                events = list(db.scalars(select(AuditEvent).where(AuditEvent.action == action)))
                db.expunge_all()
            if len(events) >= count or time.monotonic() > deadline:
                return events
            time.sleep(0.1)

    def session_ends(self) -> dt.datetime:
        with self.core.reader() as db:
            session = db.get(ActivitySession, self.session_id)
            assert session is not None and session.ends_at is not None
            return session.ends_at

    def wait_log(self, text: str, timeout: float = 10.0) -> str:
        """The first proxy log line containing ``text`` (failing with what was logged)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.logs):
                if text in line:
                    return line
            time.sleep(0.1)
        raise AssertionError(f"no proxy log line with {text!r}; got:\n" + "\n".join(self.logs))


class _Lines(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.INFO)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def rdp_world(tmp: Path, xrdp: XrdpTarget | None = None) -> Iterator[RdpWorld]:
    """Build the instance, start the listener on a free port, and tear both down.
    Without ``xrdp`` the resource points at RDP's own port 3389 with xrdp's account (tests
    that never reach a target)."""
    port, account = (xrdp.port, (xrdp.username, xrdp.password)) if xrdp else (3389, XRDP_USER)
    url = f"sqlite:///{tmp / 'rdp.db'}"
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    (tmp / "instance").mkdir()
    clock = FrozenClock(T0)
    core = make_core(tmp / "instance", url, clock, build_plugin_host(strict=True))
    with core.unit() as db:
        alice = b.make_user(db, "alice", password=PASSWORD)
        carol = b.make_user(db, "carol", Role.APPROVER)
        erin = b.make_user(db, "erin", Role.ADMIN)
        win01 = b.make_resource(
            db, "win01", protocols={"rdp": port}, platform=Platform.WINDOWS, trust_on_first_use=True
        )
        cred = b.make_credential(core, db, "win01 rdptest", *account, resource=win01)
        admin = b.make_activity(db, "Windows Admin", login_mode=LoginMode.MANAGED, credential=cred)
        standard = b.make_profile(db, "standard", max_duration_minutes=60)
        b.make_policy(db, "windows", standard, [admin], [win01], [alice])
        gated = b.make_profile(db, "gated", tiers=[(1, [carol], [])])
        audit = b.make_activity(db, "Audit", login_mode=LoginMode.MANAGED, credential=cred)
        b.make_policy(db, "audit", gated, [audit], [win01], [alice])
        set_setting(core, db, erin, "win01", "rdp", "security", "tls")
        session_id = create_session(core, db, alice, SessionRequest("Windows Admin", ("win01",))).id
    assert session_id in scheduler.tick(core).activated
    lines: list[str] = []
    handler = _Lines(lines)
    logger = logging.getLogger("pamcore_rdp")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    loop = LoopThread()
    listener = RdpListener(core, "127.0.0.1", 0)
    loop.run(listener.start())
    try:
        yield RdpWorld(core, clock, listener, listener.port, session_id, tmp, lines)
    finally:
        loop.run(listener.stop())
        loop.close()
        logger.removeHandler(handler)
        logger.setLevel(level)
        core.dispose()
