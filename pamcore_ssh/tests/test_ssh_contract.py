"""The SSH proxy against pamcore's protocol contract: an asyncssh client through the
proxy to an asyncssh echo target that accepts the contract's managed account."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import asyncssh
import pytest
from ssh_peers import EchoTarget

from pamcore.core import Pamcore
from pamcore.model import Resource
from pamcore.testing.contract import (
    TARGET_ACCOUNT_PASSWORD,
    ContractWorld,
    ProtocolContract,
    Refused,
)


@dataclass
class Through:
    conn: asyncssh.SSHClientConnection
    process: asyncssh.SSHClientProcess[bytes]


class _BannerClient(asyncssh.SSHClient):
    def __init__(self) -> None:
        self.banner = ""

    def auth_banner_received(self, msg: str, lang: str) -> None:
        self.banner += msg


class TestSshContract(ProtocolContract):
    protocol = "ssh"

    @pytest.fixture
    def echo(self, echo_target_factory: Callable[[str, str], EchoTarget]) -> EchoTarget:
        return echo_target_factory("svc", TARGET_ACCOUNT_PASSWORD)

    @pytest.fixture
    def target(self, echo: EchoTarget) -> Iterator[tuple[str, int]]:
        yield echo.address

    @pytest.fixture(autouse=True)
    def pinned(self, request: pytest.FixtureRequest, core: Pamcore, echo: EchoTarget) -> None:
        """The contract's resource trusts the echo target's host key."""
        if "world" not in request.fixturenames:
            return
        world: ContractWorld = request.getfixturevalue("world")
        with core.unit() as db:
            resource = db.get(Resource, world.resource_id)
            assert resource is not None
            resource.host_key = echo.host_key_line

    async def connect_through(
        self, host: str, port: int, username: str, password: str, resource_name: str
    ) -> Through:
        client = _BannerClient()
        login = f"{username}+{resource_name.replace(' ', '-')}"
        try:
            conn, _ = await asyncssh.create_connection(
                lambda: client,
                host,
                port,
                username=login,
                password=password,
                known_hosts=None,
                client_keys=None,
                agent_path=None,
                config=None,
                preferred_auth="password",
            )
        except asyncssh.PermissionDenied:
            raise Refused(client.banner.strip() or "permission denied") from None
        process = await conn.create_process("cat", encoding=None)
        first = (await process.stderr.readline()).decode().strip()
        if first != "ready":
            conn.close()
            raise Refused(first)
        return Through(conn, process)

    async def exchange(self, connection: Through, payload: bytes) -> bytes:
        connection.process.stdin.write(payload)
        return await connection.process.stdout.readexactly(len(payload))

    async def disconnect(self, connection: Through) -> None:
        connection.conn.close()
        await connection.conn.wait_closed()
