"""The RDP proxy against pamcore's protocol contract, with real peers: xfreerdp (under the
Xvfb fixture) through the plugin's listener to xrdp, where the contract's vaulted account
``svc`` is a Unix user whose session is the navy xterm.

RDP carries no byte stream to echo, so "data flows" means the target's desktop reaches
the client: :meth:`exchange` answers with the colour the client shows at (100, 100), and
the expected reply is the navy of the target session. A refusal is what the proxy painted
for the user; the test reads the same sentence from the audit log, where the proxy
records it (``auth.failed`` / ``connection.refused``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from peers import log_mark, log_match
from rdp_display import XfreerdpRun, screenshot_pixel, start_xfreerdp
from rdp_targets import NAVY, XrdpTarget, xrdp_logged_in
from sqlalchemy import func, select

from pamcore.core import Pamcore
from pamcore.directconnect import login_name
from pamcore.model import AuditEvent, Resource
from pamcore.testing.contract import (
    TARGET_ACCOUNT_PASSWORD,
    ContractWorld,
    ProtocolContract,
    Refused,
)

#: The contract's vaulted account (``pamcore.testing.contract``), a Unix user for xrdp.
ACCOUNT = "svc"
#: Seconds for xfreerdp to reach the target through both phases (redirection included).
LOGIN_SECONDS = 25.0
REFUSALS = (
    "auth.failed",
    "auth.second_factor_required",
    "connection.refused",
    "connection.protocol_refused",
    "connection.certificate_refused",
)


@dataclass
class Through:
    client: XfreerdpRun


class TestRdpContract(ProtocolContract):
    protocol = "rdp"
    probe_timeout = 5.0

    @pytest.fixture
    def target(self, xrdp_target: XrdpTarget) -> Iterator[tuple[str, int]]:
        xrdp_target.add_user(ACCOUNT, TARGET_ACCOUNT_PASSWORD)
        yield ("127.0.0.1", xrdp_target.port)

    @pytest.fixture(autouse=True)
    def peers(self, request: pytest.FixtureRequest, xvfb_display: str) -> None:
        """What ``connect_through`` needs besides its arguments: the client display, the
        target's log and the core whose audit log holds the refusals; xrdp's certificate
        is pinned on first use (pamcore_rdp.proxy.trust)."""
        self.display = xvfb_display
        if "world" in request.fixturenames:
            self.core: Pamcore = request.getfixturevalue("core")
            self.xrdp: XrdpTarget = request.getfixturevalue("xrdp_target")
            world: ContractWorld = request.getfixturevalue("world")
            with self.core.unit() as db:
                resource = db.get(Resource, world.resource_id)
                assert resource is not None
                resource.trust_on_first_use = True

    def expected_reply(self, payload: bytes) -> bytes:
        return repr(NAVY).encode()

    async def connect_through(
        self, host: str, port: int, username: str, password: str, resource_name: str
    ) -> Through:
        """xfreerdp with the DirectConnect login ``user+resource`` and the password in
        Client Info; through once the target logged the account in, refused once the
        proxy audited a refusal after this attempt began."""
        sesman = log_mark(self.xrdp.sesman_log)
        audited = await asyncio.to_thread(self._last_audit_id)
        login = login_name(username, None, resource_name)
        client = start_xfreerdp(
            [f"/v:{host}:{port}", f"/u:{login}", f"/p:{password}", "/sec:tls", "/size:1024x768"],
            self.display,
        )
        deadline = asyncio.get_running_loop().time() + LOGIN_SECONDS
        while asyncio.get_running_loop().time() < deadline:
            if log_match(self.xrdp.sesman_log, xrdp_logged_in(ACCOUNT), sesman):
                return Through(client)
            reason = await asyncio.to_thread(self._refusal_since, audited)
            if reason is not None:
                client.finish()
                raise Refused(reason)
            if client.process.poll() is not None:
                rc, output = client.finish()
                raise Refused(f"xfreerdp exited ({rc}) without a refusal:\n{output[-2000:]}")
            await asyncio.sleep(0.2)
        _, output = client.finish()
        raise AssertionError(f"neither through nor refused in {LOGIN_SECONDS} s:\n{output[-2000:]}")

    async def exchange(self, connection: Through, payload: bytes) -> bytes:
        """The colour at (100, 100) once it is the target's navy (or the last one seen)."""
        seen = (0, 0, 0)
        for _ in range(30):
            seen = await asyncio.to_thread(screenshot_pixel, self.display, 100, 100)
            if seen == NAVY:
                break
            await asyncio.sleep(0.25)
        return repr(seen).encode()

    async def disconnect(self, connection: Through) -> None:
        await asyncio.to_thread(connection.client.finish)

    def _last_audit_id(self) -> int:
        with self.core.reader() as db:
            return int(db.scalar(select(func.max(AuditEvent.id))) or 0)

    def _refusal_since(self, after: int) -> str | None:
        with self.core.reader() as db:
            event = db.scalar(
                select(AuditEvent)
                .where(AuditEvent.id > after, AuditEvent.action.in_(REFUSALS))
                .order_by(AuditEvent.id)
                .limit(1)
            )
            return None if event is None else str(event.details.get("reason", event.action))
