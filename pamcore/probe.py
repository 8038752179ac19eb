"""Reachability probes for protocol plugins' ``connection_test``: connect within a time
limit, let the protocol say its part, and turn every network failure into a sentence."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable

from pamcore.registry import ConnectionTest

#: (reader, writer, "address:port") -> verdict; the protocol's part of the probe.
Conversation = Callable[
    [asyncio.StreamReader, asyncio.StreamWriter, str], Awaitable[ConnectionTest]
]


async def probe(
    address: str,
    port: int,
    timeout: float,
    converse: Conversation | None = None,
    *,
    service: str = "",
    refused_hint: str = "nothing listens there?",
    limit: int = 2**16,
) -> ConnectionTest:
    """Open ``address:port`` and run ``converse`` (or only connect), all within ``timeout``
    seconds; a refused, unreachable, unresolvable or silent peer gets a clear message."""
    where = f"{address}:{port}"
    label = f"{service} " if service else ""
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(address, port, limit=limit)
            if converse is None:
                return ConnectionTest(True, f"{where} accepts TCP connections")
            return await converse(reader, writer, where)
    except TimeoutError:
        return ConnectionTest(False, f"no {label}answer from {where} within {timeout:g} s")
    except ConnectionRefusedError:
        return ConnectionTest(False, f"{where} refused the connection ({refused_hint})")
    except socket.gaierror:
        return ConnectionTest(False, f"cannot resolve the address {address!r}")
    except OSError as exc:
        return ConnectionTest(False, f"cannot reach {where}: {exc.strerror or exc}")
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
