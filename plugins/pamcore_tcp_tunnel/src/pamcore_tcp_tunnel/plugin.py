"""The ``tcp`` protocol registration: listener, client launch string, connection test.

Plugin modules do no I/O at import time; the listener is created by the proxy runtime
through ``listener_factory``, and session changes reach its tunnels through the proxy
kit's watch (:class:`pamcore.proxy.LiveConnections`).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING

from pamcore import hookimpl
from pamcore.proxy import login_name, probe
from pamcore.registry import ConnectionTest, LaunchInfo, ProtocolHandler
from pamcore_tcp_tunnel.listener import PROTOCOL, TunnelListener

if TYPE_CHECKING:
    from pamcore.core import Pamcore
    from pamcore.model import ActivitySession, Resource, User

DEFAULT_PORT = 4455


def client_launch(
    session: ActivitySession, resource: Resource, user: User, proxy_host: str, proxy_port: int
) -> LaunchInfo:
    """The helper command that gives a database client a local port to connect to."""
    login = login_name(user.username, session.activity.name, resource.name)
    return LaunchInfo(
        command=shlex.join(["pamcore-tcp-connect", f"{proxy_host}:{proxy_port}", login])
    )


async def connection_test(address: str, port: int, timeout: float) -> ConnectionTest:
    """Can the proxy open a TCP connection to ``address:port``? (No data is sent.)"""
    return await probe(address, port, timeout)


def listener_factory(core: Pamcore, host: str, port: int) -> TunnelListener:
    return TunnelListener(core, host, port)


@hookimpl
def pamcore_register_protocols(register: Callable[[ProtocolHandler], None]) -> None:
    register(
        ProtocolHandler(
            name=PROTOCOL,
            default_port=DEFAULT_PORT,
            description="Plain TCP tunnel (database clients) with a PAMCORE login line",
            listener_factory=listener_factory,
            client_launch=client_launch,
            connection_test=connection_test,
        )
    )
