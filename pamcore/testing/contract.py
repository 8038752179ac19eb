"""The protocol contract: pamcore's own expectations, run against a protocol plugin.

After devpi's storage plugins, which run the server's suite against themselves: a protocol
plugin's tests subclass :class:`ProtocolContract`, name the protocol, give a real server to
reach and say how a client speaks the protocol::

    from pamcore.testing.contract import EchoServer, ProtocolContract, Refused

    class TestTcpContract(ProtocolContract):
        protocol = "tcp"

        @pytest.fixture
        def target(self):
            with EchoServer() as server:
                yield server.address

        async def connect_through(self, host, port, username, password, resource_name):
            ...  # log in through the proxy listener; raise Refused(reason) when refused

        async def exchange(self, connection, payload):
            ...  # send payload to the target through the connection, return its answer

        async def disconnect(self, connection):
            ...

The suite runs on SQLite with a frozen clock (:data:`pamcore.testing.T0`), builds its own
small world (a user with a session, a user without one, a resource on ``target``) and uses
the installed plugins in strict mode, exactly as a deployment would load them. Tests that
need a listener are skipped, saying so, while the plugin has no ``listener_factory``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shlex
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pyotp
import pytest
from sqlalchemy import create_engine, select

from pamcore.clock import FrozenClock
from pamcore.core import Pamcore
from pamcore.directconnect import login_name
from pamcore.lifecycle import Status
from pamcore.model import Activity, ActivitySession, AuditEvent, Base, LoginMode, Resource, User
from pamcore.plugins import build_plugin_host
from pamcore.registry import ProtocolHandler
from pamcore.services import scheduler
from pamcore.services.common import CONSOLE
from pamcore.services.connections import open_count, request_termination
from pamcore.services.sessions import SessionRequest, create_session, end_session
from pamcore.services.twofactor import confirm_enrolment, start_enrolment
from pamcore.testing import T0, make_core
from pamcore.testing import builders as b

#: Test-only secrets of the contract world (never real ones).
ALICE_PASSWORD = "Contract-alice-pw-1"  # noqa: S105
MALLORY_PASSWORD = "Contract-mallory-pw-2"  # noqa: S105
TARGET_ACCOUNT_PASSWORD = "Contract-target-pw-3"  # noqa: S105
PROXY_HOST = "pam.contract.test"
#: Not any plugin's default: the launch must name the port it is given.
PROXY_PORT = 52417
ACTIVITY = "Contract Check"
RESOURCE = "contract target"


class Refused(Exception):
    """Raised by ``connect_through`` when the proxy refused; the message is what the user
    saw (the line the terminal or client shows)."""


class EchoServer:
    """A real TCP echo server on 127.0.0.1 in a thread: a target for byte-pipe protocols."""

    def __init__(self) -> None:
        class Echo(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                while data := self.request.recv(65536):
                    self.request.sendall(data)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def __enter__(self) -> EchoServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ContractWorld:
    """Who and what the contract tests use; ids, so each test reloads them in its unit."""

    alice_id: int
    mallory_id: int
    resource_id: int
    session_id: int


class ProtocolContract:
    """Subclass in a protocol plugin's tests; see the module docstring."""

    #: The protocol name the plugin registers.
    protocol: ClassVar[str] = ""
    #: Timeout given to ``connection_test``; the closed-port probe must answer within it.
    probe_timeout: ClassVar[float] = 3.0
    #: Bytes sent through an authorised connection; ``expected_reply`` must come back.
    payload: ClassVar[bytes] = b"pamcore contract \x00\xff payload\n"

    def expected_reply(self, payload: bytes) -> bytes:
        """What the target answers to ``payload`` (an echo server: the same bytes)."""
        return payload

    # -- what a subclass provides -------------------------------------------------------------

    @pytest.fixture
    def target(self) -> Iterator[tuple[str, int]]:
        """A real server (address, port) the protocol reaches; override it."""
        pytest.fail(f"{type(self).__name__} must provide a 'target' fixture")
        yield ("", 0)  # pragma: no cover

    async def connect_through(
        self, host: str, port: int, username: str, password: str, resource_name: str
    ) -> Any:
        """Log in through the listener at ``host:port``; raise :class:`Refused` if refused."""
        raise NotImplementedError

    async def exchange(self, connection: Any, payload: bytes) -> bytes:
        """Send ``payload`` to the target through ``connection`` and return its answer."""
        raise NotImplementedError

    async def disconnect(self, connection: Any) -> None:
        raise NotImplementedError

    # -- fixtures: SQLite, frozen clock, installed plugins (strict) ---------------------------

    @pytest.fixture
    def clock(self) -> FrozenClock:
        return FrozenClock(T0)

    @pytest.fixture
    def core(self, tmp_path: Path, clock: FrozenClock) -> Iterator[Pamcore]:
        url = f"sqlite:///{tmp_path / 'contract.db'}"
        engine = create_engine(url)
        Base.metadata.create_all(engine)
        engine.dispose()
        instance = tmp_path / "instance"
        instance.mkdir()
        core = make_core(instance, url, clock, build_plugin_host(strict=True))
        yield core
        core.dispose()

    @pytest.fixture
    def handler(self, core: Pamcore) -> ProtocolHandler:
        protocols = core.hooks.protocols()
        if self.protocol not in protocols:
            pytest.fail(
                f"protocol {self.protocol!r} is not registered (registered: "
                f"{', '.join(sorted(protocols)) or 'none'}); is the distribution installed?"
            )
        return protocols[self.protocol]

    @pytest.fixture
    def world(self, core: Pamcore, target: tuple[str, int]) -> ContractWorld:
        """alice has an Available session on the target; mallory is granted but has none."""
        address, port = target
        with core.unit() as db:
            alice = b.make_user(db, "alice", password=ALICE_PASSWORD)
            mallory = b.make_user(db, "mallory", password=MALLORY_PASSWORD)
            resource = b.make_resource(
                db, RESOURCE, address=address, protocols={self.protocol: port}
            )
            cred = b.make_credential(
                core,
                db,
                "contract account",
                "svc",
                password=TARGET_ACCOUNT_PASSWORD,
                resource=resource,
            )
            activity = b.make_activity(db, ACTIVITY, login_mode=LoginMode.MANAGED, credential=cred)
            profile = b.make_profile(db, "contract profile")
            b.make_policy(db, "contract policy", profile, [activity], [resource], [alice, mallory])
            session = create_session(core, db, alice, SessionRequest(ACTIVITY, (RESOURCE,)))
            world = ContractWorld(alice.id, mallory.id, resource.id, session.id)
        report = scheduler.tick(core)
        assert world.session_id in report.activated, f"session not made available: {report}"
        return world

    @contextlib.asynccontextmanager
    async def running_listener(self, core: Pamcore, handler: ProtocolHandler):  # type: ignore[no-untyped-def]
        if handler.listener_factory is None:
            pytest.skip(f"{self.protocol}: no listener_factory yet, nothing to connect through")
        listener = handler.listener_factory(core, "127.0.0.1", 0)
        await asyncio.wait_for(listener.start(), 10)
        try:
            yield listener
        finally:
            await asyncio.wait_for(listener.stop(), 10)

    # -- the contract -------------------------------------------------------------------------

    def test_registered_exactly_once(self, core: Pamcore, handler: ProtocolHandler) -> None:
        owners = []
        for plugin_name, register_protocols in core.plugins.each_impl("pamcore_register_protocols"):
            staged: list[ProtocolHandler] = []
            register_protocols(register=staged.append)
            owners += [plugin_name for p in staged if p.name == self.protocol]
        assert len(owners) == 1, f"{self.protocol!r} registered by {owners}"
        assert not core.plugins.failures, core.plugins.failures

    def test_name_and_default_port_are_valid(self, handler: ProtocolHandler) -> None:
        assert re.fullmatch(r"[a-z][a-z0-9-]{0,31}", handler.name), handler.name
        assert 1 <= handler.default_port <= 65535
        assert handler.description.strip(), "describe the protocol for the dashboard"

    def test_client_launch_names_proxy_host_port_and_directconnect_login(
        self, core: Pamcore, handler: ProtocolHandler, world: ContractWorld
    ) -> None:
        assert handler.client_launch is not None, "the Connection icon needs client_launch"
        with core.unit() as db:
            session = db.get(ActivitySession, world.session_id)
            resource = db.get(Resource, world.resource_id)
            alice = db.get(User, world.alice_id)
            assert session and resource and alice
            info = handler.client_launch(session, resource, alice, PROXY_HOST, PROXY_PORT)
        text = " ".join(
            [info.command, info.uri, info.file[2].decode("utf-8", "replace") if info.file else ""]
        )
        assert PROXY_HOST in text
        assert str(PROXY_PORT) in text, "the launch names the configured port, not a default"
        assert str(handler.default_port) not in text
        assert login_name("alice", ACTIVITY, RESOURCE) in text

    def test_client_launch_command_gives_admin_chosen_names_to_the_shell_as_data(
        self, handler: ProtocolHandler, tmp_path: Path
    ) -> None:
        """Administrators name activities and resources; the command a user pastes into a
        shell must hand those names to the client as they are, and run none of them."""
        assert handler.client_launch is not None
        ran = tmp_path / "ran"
        activity = f"Night 'ops' \"now\";touch${{IFS}}{ran}"
        resource = f"db$(touch${{IFS}}{ran})`touch${{IFS}}{ran}`&x|y>z"
        session = ActivitySession(id=1, activity=Activity(name=activity))
        info = handler.client_launch(
            session, Resource(name=resource), User(username="alice"), PROXY_HOST, PROXY_PORT
        )
        if not info.command:
            pytest.skip(f"{self.protocol} shows no command line")
        program, _, arguments = info.command.partition(" ")
        shell = subprocess.run(  # noqa: S603 (sh from PATH, our own test input)
            ["sh", "-c", f"printf '%s\\0' {arguments}"],  # noqa: S607
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        words = shell.stdout.split("\0")[:-1]
        assert not ran.exists(), f"the shell ran part of a name: {info.command}"
        assert words == shlex.split(info.command)[1:], shell.stderr
        assert program == shlex.split(info.command)[0]
        assert any(login_name("alice", activity, resource) in word for word in words), words

    def test_connection_test_ok_against_target(
        self, handler: ProtocolHandler, target: tuple[str, int]
    ) -> None:
        assert handler.connection_test is not None
        result = asyncio.run(handler.connection_test(*target, self.probe_timeout))
        assert result.ok, result.message
        assert result.message.strip()

    def test_connection_test_closed_port_is_clear_and_quick(self, handler: ProtocolHandler) -> None:
        assert handler.connection_test is not None
        port = closed_port()
        started = time.monotonic()
        result = asyncio.run(handler.connection_test("127.0.0.1", port, self.probe_timeout))
        assert time.monotonic() - started < self.probe_timeout + 1
        assert not result.ok
        assert str(port) in result.message, "say which address was tried"
        assert "Traceback" not in result.message

    def test_listener_starts_on_port_0_and_stops_cleanly(
        self, core: Pamcore, handler: ProtocolHandler
    ) -> None:
        async def scenario() -> int:
            async with self.running_listener(core, handler) as listener:
                port = listener.port
                assert port > 0
                _r, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
            return port

        port = asyncio.run(scenario())
        with (
            pytest.raises(ConnectionRefusedError),
            socket.create_connection(("127.0.0.1", port), 2),
        ):
            pass

    def test_authorised_user_gets_through_and_data_flows(
        self, core: Pamcore, handler: ProtocolHandler, world: ContractWorld
    ) -> None:
        async def scenario() -> bytes:
            async with self.running_listener(core, handler) as listener:
                conn = await self.connect_through(
                    "127.0.0.1", listener.port, "alice", ALICE_PASSWORD, RESOURCE
                )
                try:
                    return await asyncio.wait_for(self.exchange(conn, self.payload), 10)
                finally:
                    await self.disconnect(conn)

        assert asyncio.run(scenario()) == self.expected_reply(self.payload)

    def test_session_is_active_while_connected(
        self, core: Pamcore, handler: ProtocolHandler, world: ContractWorld
    ) -> None:
        """The plugin counts its connections (``pamcore.services.connections``), so the
        dashboard shows Active while someone is connected and Available after; each
        connection has its own id, audited once opened and once closed."""

        def state() -> tuple[Status, int]:
            with core.reader() as db:
                session = db.get(ActivitySession, world.session_id)
                assert session is not None
                return Status(session.status), open_count(db, session.id)

        async def one_connection(port: int) -> tuple[tuple[Status, int], tuple[Status, int]]:
            conn = await self.connect_through("127.0.0.1", port, "alice", ALICE_PASSWORD, RESOURCE)
            await asyncio.wait_for(self.exchange(conn, self.payload), 10)
            during = await asyncio.to_thread(state)
            await self.disconnect(conn)
            for _ in range(100):  # the proxy notices the close asynchronously
                after = await asyncio.to_thread(state)
                if after[1] == 0:
                    break
                await asyncio.sleep(0.05)
            return during, after

        async def scenario() -> list[tuple[tuple[Status, int], tuple[Status, int]]]:
            async with self.running_listener(core, handler) as listener:
                return [await one_connection(listener.port) for _ in range(2)]

        seen = asyncio.run(scenario())
        assert seen == [((Status.ACTIVE, 1), (Status.AVAILABLE, 0))] * 2
        with core.reader() as db:
            events = db.scalars(
                select(AuditEvent)
                .where(AuditEvent.session_id == world.session_id)
                .where(AuditEvent.action.in_(["connection.opened", "connection.closed"]))
                .order_by(AuditEvent.id)
            )
            pairs = [(e.action, e.details["connection"]) for e in events]
        first, second = (c for a, c in pairs if a == "connection.opened")
        assert first != second
        assert pairs == [
            ("connection.opened", first),
            ("connection.closed", first),
            ("connection.opened", second),
            ("connection.closed", second),
        ]

    def test_another_nodes_termination_and_ending_close_the_connection(
        self, core: Pamcore, handler: ProtocolHandler, world: ContractWorld, clock: FrozenClock
    ) -> None:
        """An administrator's termination, then the session's ending, made by another
        process (its own core: another node) reach the listener through the core's watch:
        the proxy closes the connection itself, recording why, within 2 s."""
        elsewhere = Pamcore(
            core.config, plugins=core.plugins, clock=clock, node=f"{core.node}-elsewhere"
        )

        def latest_connection() -> int:
            with core.reader() as db:
                events = db.scalars(
                    select(AuditEvent).where(
                        AuditEvent.session_id == world.session_id,
                        AuditEvent.action == "connection.opened",
                    )
                )
                return max(e.details["connection"] for e in events)

        def terminate() -> None:
            with elsewhere.unit() as db:
                request_termination(elsewhere, db, CONSOLE, latest_connection(), "contract")

        def end() -> None:
            with elsewhere.unit() as db:
                end_session(elsewhere, db, CONSOLE, world.session_id)

        async def closed_after(port: int, change: Any) -> float:
            conn = await self.connect_through("127.0.0.1", port, "alice", ALICE_PASSWORD, RESOURCE)
            try:
                await asyncio.wait_for(self.exchange(conn, self.payload), 10)
                await asyncio.to_thread(change)
                started = time.monotonic()
                while await asyncio.to_thread(self._open_connections, core, world):
                    assert time.monotonic() - started < 10, "the proxy never closed it"
                    await asyncio.sleep(0.02)
                return time.monotonic() - started
            finally:
                await self.disconnect(conn)

        async def scenario() -> list[float]:
            async with self.running_listener(core, handler) as listener:
                return [await closed_after(listener.port, change) for change in (terminate, end)]

        try:
            took = asyncio.run(scenario())
        finally:
            elsewhere.dispose()
        with core.reader() as db:
            closes = db.scalars(
                select(AuditEvent)
                .where(AuditEvent.session_id == world.session_id)
                .where(AuditEvent.action == "connection.closed")
                .order_by(AuditEvent.id)
            )
            reasons = [e.details.get("reason", "") for e in closes]
        assert reasons[0] == "contract", reasons
        assert "ended" in reasons[1], reasons
        assert max(took) < 2.0, took

    @staticmethod
    def _open_connections(core: Pamcore, world: ContractWorld) -> int:
        with core.reader() as db:
            return open_count(db, world.session_id)

    def _refusal(self, core: Pamcore, handler: ProtocolHandler, username: str, pw: str) -> str:
        async def scenario() -> str:
            async with self.running_listener(core, handler) as listener:
                with pytest.raises(Refused) as refused:
                    conn = await asyncio.wait_for(
                        self.connect_through("127.0.0.1", listener.port, username, pw, RESOURCE),
                        15,
                    )
                    await self.disconnect(conn)
                return str(refused.value)

        reason = asyncio.run(scenario())
        assert "Traceback" not in reason
        assert pw not in reason, "a refusal must never echo the password"
        return reason

    def test_user_without_session_is_refused_with_a_reason(
        self, core: Pamcore, handler: ProtocolHandler, world: ContractWorld
    ) -> None:
        reason = self._refusal(core, handler, "mallory", MALLORY_PASSWORD)
        assert "no session" in reason, reason

    def test_wrong_password_is_refused(
        self, core: Pamcore, handler: ProtocolHandler, world: ContractWorld
    ) -> None:
        reason = self._refusal(core, handler, "alice", ALICE_PASSWORD + "x")
        assert "wrong username or password" in reason, reason

    def test_password_alone_does_not_admit_an_account_with_a_second_factor(
        self, core: Pamcore, handler: ProtocolHandler, world: ContractWorld
    ) -> None:
        """alice enrolled a second factor: a client that gives only her password is
        refused, whatever the protocol can or cannot ask, so no listener makes the factor
        optional."""
        with core.unit() as db:
            alice = db.get(User, world.alice_id)
            assert alice is not None
            enrolment = start_enrolment(core, db, alice)
            code = pyotp.TOTP(enrolment.secret).at(core.now())
            confirm_enrolment(core, db, alice, enrolment.secret_id, code)
        reason = self._refusal(core, handler, "alice", ALICE_PASSWORD)
        assert reason, "refused without a reason"
        with core.reader() as db:
            opened = db.scalars(
                select(AuditEvent)
                .where(AuditEvent.session_id == world.session_id)
                .where(AuditEvent.action == "connection.opened")
            ).all()
        assert not opened, "a connection was opened on the password alone"


__all__ = [
    "ContractWorld",
    "EchoServer",
    "ProtocolContract",
    "Refused",
    "closed_port",
]
