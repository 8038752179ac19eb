"""``pamcore-tcp-connect``: the user's side of the tunnel, for clients that cannot send the
PAMCORE line themselves (psql, mysql, DBeaver...).

It listens on 127.0.0.1, and for each local connection opens a tunnel through the proxy,
sends the PAMCORE line and relays. The password is asked once (or read from
``PAMCORE_PASSWORD``) and kept in memory only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import os
import sys

from pamcore_tcp_tunnel.wire import MAX_LINE, close_writer, hello_line, relay

HANDSHAKE_TIMEOUT = 30.0


class TunnelRefused(Exception):
    """The proxy answered ``ERR``; the message is its reason, for the person."""


async def open_tunnel(
    host: str, port: int, login: str, password: str, timeout: float = HANDSHAKE_TIMEOUT
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to the proxy and complete the handshake; raises :class:`TunnelRefused`."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port, limit=MAX_LINE)
        try:
            writer.write(hello_line(login, password))
            await writer.drain()
            answer = (await reader.readline()).decode("utf-8", "replace").rstrip("\r\n")
        except BaseException:
            await close_writer(writer)
            raise
    if answer == "OK":
        return reader, writer
    await close_writer(writer)
    if answer.startswith("ERR "):
        raise TunnelRefused(answer[4:])
    raise TunnelRefused("the proxy closed the connection without an answer")


async def start_forwarder(
    listen_host: str, listen_port: int, host: str, port: int, login: str, password: str
) -> asyncio.Server:
    """Listen locally; each local connection gets its own tunnel through the proxy."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            tunnel = await open_tunnel(host, port, login, password)
        except (TunnelRefused, OSError, TimeoutError) as exc:
            print(f"pamcore-tcp-connect: refused: {exc}", file=sys.stderr)
            await close_writer(writer)
            return
        await relay((reader, writer), tunnel)

    return await asyncio.start_server(handle, listen_host, listen_port)


async def forward(
    listen_host: str, listen_port: int, host: str, port: int, login: str, password: str
) -> None:
    """Serve local connections until interrupted."""
    server = await start_forwarder(listen_host, listen_port, host, port, login, password)
    bound = server.sockets[0].getsockname()
    print(f"pamcore-tcp-connect: point your client at {bound[0]}:{bound[1]}", file=sys.stderr)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="pamcore-tcp-connect", description="Reach a resource through pamcore's TCP tunnel."
    )
    parser.add_argument("proxy", help="proxy host:port, e.g. pam.example.com:4455")
    parser.add_argument("login", help="user+resource or user+activity+resource")
    parser.add_argument("--listen", default="127.0.0.1:0", help="local host:port (default: any)")
    args = parser.parse_args(argv)
    host, _, port = args.proxy.rpartition(":")
    listen_host, _, listen_port = args.listen.rpartition(":")
    password = os.environ.get("PAMCORE_PASSWORD") or getpass.getpass("pamcore password: ")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(forward(listen_host, int(listen_port), host, int(port), args.login, password))
