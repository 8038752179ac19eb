"""The shared reachability probe: every network failure becomes one sentence."""

from __future__ import annotations

import asyncio
import socket

from pamcore.probe import probe
from pamcore.registry import ConnectionTest
from pamcore.testing.contract import closed_port


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_connect_only_succeeds_against_a_listener() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        result = run(probe("127.0.0.1", port, 2))
    assert result == ConnectionTest(True, f"127.0.0.1:{port} accepts TCP connections")


def test_refused_and_unresolvable() -> None:
    port = closed_port()
    refused = run(probe("127.0.0.1", port, 2, service="SSH", refused_hint="is SSH running?"))
    assert refused.message == f"127.0.0.1:{port} refused the connection (is SSH running?)"
    bad = run(probe("no-such-host.invalid", 22, 2))
    assert not bad.ok and bad.message == "cannot resolve the address 'no-such-host.invalid'"


def test_a_silent_peer_times_out_with_the_service_named() -> None:
    async def scenario() -> ConnectionTest:
        async def silent(reader, writer):  # type: ignore[no-untyped-def]
            await asyncio.sleep(5)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        async def wait_for_banner(reader, writer, where):  # type: ignore[no-untyped-def]
            await reader.readline()
            return ConnectionTest(True, "unexpected")

        try:
            return await probe("127.0.0.1", port, 0.3, wait_for_banner, service="SSH")
        finally:
            server.close()

    result = run(scenario())
    assert not result.ok and result.message.startswith("no SSH answer from 127.0.0.1:")
    assert result.message.endswith("within 0.3 s")
