"""The tcp tunnel against pamcore's protocol contract, plus what is particular to it:
the hard stop at the session's end time, extensions moving it, and the local helper that
lets an unmodified client use the tunnel. Real sockets on 127.0.0.1 throughout."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Iterator
from typing import Any

import pyotp
import pytest
from pamcore_tcp_tunnel import listener as tunnel_listener
from pamcore_tcp_tunnel.client import TunnelRefused, open_tunnel, start_forwarder
from pamcore_tcp_tunnel.wire import HandshakeError, parse_hello
from sqlalchemy import select

from pamcore.clock import FrozenClock
from pamcore.core import Pamcore
from pamcore.directconnect import login_name
from pamcore.model import ActivitySession, ResourceProtocol, User
from pamcore.proxy import NEEDS_CODE, UNEXPECTED
from pamcore.registry import ProtocolHandler
from pamcore.services.sessions import extend_session
from pamcore.services.twofactor import confirm_enrolment, start_enrolment
from pamcore.testing.contract import (
    ACTIVITY,
    ALICE_PASSWORD,
    RESOURCE,
    ContractWorld,
    EchoServer,
    ProtocolContract,
    Refused,
    closed_port,
)

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class TestTcpTunnelContract(ProtocolContract):
    protocol = "tcp"

    @pytest.fixture
    def target(self) -> Iterator[tuple[str, int]]:
        with EchoServer() as server:
            yield server.address

    async def connect_through(
        self, host: str, port: int, username: str, password: str, resource_name: str
    ) -> Connection:
        login = f"{username}+{resource_name.replace(' ', '-')}"
        try:
            return await open_tunnel(host, port, login, password, timeout=10)
        except TunnelRefused as exc:
            raise Refused(str(exc)) from None

    async def exchange(self, connection: Connection, payload: bytes) -> bytes:
        reader, writer = connection
        writer.write(payload)
        await writer.drain()
        return await reader.readexactly(len(payload))

    async def disconnect(self, connection: Connection) -> None:
        connection[1].close()

    # -- tcp-specific ---------------------------------------------------------------------------

    def _session_end(self, core: Pamcore, world: ContractWorld) -> dt.datetime:
        with core.reader() as db:
            session = db.get(ActivitySession, world.session_id)
            assert session is not None and session.ends_at is not None
            return session.ends_at

    def test_hard_stop_at_the_sessions_end_time(
        self, core: Pamcore, clock: FrozenClock, handler: ProtocolHandler, world: ContractWorld
    ) -> None:
        clock.now = self._session_end(core, world) - dt.timedelta(seconds=0.5)

        async def scenario() -> tuple[bytes, bytes, float]:
            async with self.running_listener(core, handler) as listener:
                reader, writer = await self.connect_through(
                    "127.0.0.1", listener.port, "alice", ALICE_PASSWORD, RESOURCE
                )
                first = await self.exchange((reader, writer), b"before the end\n")
                started = asyncio.get_running_loop().time()
                rest = await asyncio.wait_for(reader.read(), 5)  # EOF when the proxy cuts
                return first, rest, asyncio.get_running_loop().time() - started

        first, rest, waited = asyncio.run(scenario())
        assert first == b"before the end\n"
        assert rest == b""
        assert waited < 2.0

    def test_extension_moves_the_hard_stop(
        self, core: Pamcore, clock: FrozenClock, handler: ProtocolHandler, world: ContractWorld
    ) -> None:
        clock.now = self._session_end(core, world) - dt.timedelta(seconds=0.5)

        async def scenario() -> bytes:
            async with self.running_listener(core, handler) as listener:
                conn = await self.connect_through(
                    "127.0.0.1", listener.port, "alice", ALICE_PASSWORD, RESOURCE
                )
                with core.unit() as db:
                    alice = db.get(ActivitySession, world.session_id).requester  # type: ignore[union-attr]
                    extend_session(core, db, alice, world.session_id)
                await asyncio.sleep(1.0)  # past the old end time
                return await asyncio.wait_for(self.exchange(conn, b"still here\n"), 5)

        assert asyncio.run(scenario()) == b"still here\n"

    def test_a_fault_of_ours_is_told_in_words_and_logged(
        self,
        core: Pamcore,
        handler: ProtocolHandler,
        world: ContractWorld,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Admission failing for a reason that is not the user's (the database, a bug): the
        client reads one line saying so, never the error's text; the operator gets the
        traceback in the proxy's log."""

        def broken(*_args: object, **_kwargs: object) -> None:
            raise RuntimeError("connection to db-internal.example failed")

        monkeypatch.setattr(tunnel_listener, "admit", broken)
        caplog.set_level(logging.ERROR, logger="pamcore_tcp_tunnel")
        reason = self._refusal(core, handler, "alice", ALICE_PASSWORD)
        assert reason == UNEXPECTED
        assert any(r.exc_info and "db-internal" in str(r.exc_info[1]) for r in caplog.records)

    def test_a_second_factor_code_follows_the_password(
        self, core: Pamcore, clock: FrozenClock, handler: ProtocolHandler, world: ContractWorld
    ) -> None:
        """alice enrolled a second factor: her password alone is refused with the sentence
        that says how to give the code; the password followed by the code opens the
        tunnel (the login line has one password field, as RDP's Client Info PDU)."""
        with core.unit() as db:
            alice = db.get(User, world.alice_id)
            assert alice is not None
            enrolment = start_enrolment(core, db, alice)
            totp = pyotp.TOTP(enrolment.secret)
            confirm_enrolment(core, db, alice, enrolment.secret_id, totp.at(core.now()))
        clock.advance(seconds=30)  # the enrolment spent the current code

        async def scenario() -> tuple[str, bytes]:
            async with self.running_listener(core, handler) as listener:
                with pytest.raises(Refused) as refused:
                    await self.connect_through(
                        "127.0.0.1", listener.port, "alice", ALICE_PASSWORD, RESOURCE
                    )
                conn = await self.connect_through(
                    "127.0.0.1",
                    listener.port,
                    "alice",
                    ALICE_PASSWORD + totp.at(core.now()),
                    RESOURCE,
                )
                echoed = await self.exchange(conn, b"with the code\n")
                await self.disconnect(conn)
                return str(refused.value), echoed

        assert asyncio.run(scenario()) == (NEEDS_CODE, b"with the code\n")

    def test_unreachable_resource_is_refused_with_its_name(
        self, core: Pamcore, handler: ProtocolHandler, world: ContractWorld, target: Any
    ) -> None:
        async def scenario() -> str:
            async with self.running_listener(core, handler) as listener:
                with pytest.raises(Refused) as refused:
                    await self.connect_through(
                        "127.0.0.1", listener.port, "alice", ALICE_PASSWORD, RESOURCE
                    )
                return str(refused.value)

        with core.unit() as db:
            for row in db.scalars(select(ResourceProtocol)):
                row.port = closed_port()
        assert asyncio.run(scenario()).startswith(f"cannot reach {RESOURCE} on port")

    def test_garbage_first_line_gets_the_expected_grammar(
        self, core: Pamcore, handler: ProtocolHandler
    ) -> None:
        async def scenario() -> bytes:
            async with self.running_listener(core, handler) as listener:
                reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
                writer.write(b"GET / HTTP/1.1\r\n")
                answer = await asyncio.wait_for(reader.readline(), 5)
                writer.close()
                return answer

        assert asyncio.run(scenario()) == (
            b"ERR expected 'PAMCORE user+resource password' (or user+activity+resource)\n"
        )

    def test_local_helper_lets_a_plain_client_through(
        self, core: Pamcore, handler: ProtocolHandler, world: ContractWorld
    ) -> None:
        """What psql would do: connect to the helper's local port and just talk."""
        login = login_name("alice", ACTIVITY, RESOURCE)

        async def scenario() -> bytes:
            async with self.running_listener(core, handler) as listener:
                helper = await start_forwarder(
                    "127.0.0.1", 0, "127.0.0.1", listener.port, login, ALICE_PASSWORD
                )
                async with helper:
                    port = helper.sockets[0].getsockname()[1]
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.write(b"SELECT 1;\n")
                    answer = await asyncio.wait_for(reader.readline(), 5)
                    writer.close()
                    return answer

        assert asyncio.run(scenario()) == b"SELECT 1;\n"


def test_hello_grammar() -> None:
    hello = parse_hello(b"PAMCORE alice+Linux-Admin+db01 s3cr3t with spaces\n")
    assert (hello.username, hello.activity, hello.resource) == ("alice", "Linux-Admin", "db01")
    assert hello.password == "s3cr3t with spaces"
    assert "s3cr3t" not in repr(hello)
    with pytest.raises(HandshakeError):
        parse_hello(b"PAMCORE alice password\n")
