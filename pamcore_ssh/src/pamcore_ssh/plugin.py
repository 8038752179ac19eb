"""The ``ssh`` protocol registration: default port, DirectConnect launch string, probe.

Plugin modules do no I/O at import time; everything happens inside the hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pamcore import hookimpl
from pamcore.directconnect import login_name
from pamcore.registry import LaunchInfo, ProtocolHandler
from pamcore_ssh.probe import probe_ssh

if TYPE_CHECKING:
    from pamcore.model import ActivitySession, Resource, User

#: Port of pamcore's SSH proxy; 4422 keeps clear of a host's own sshd on 22.
DEFAULT_PORT = 4422


def client_launch(
    session: ActivitySession, resource: Resource, user: User, proxy_host: str
) -> LaunchInfo:
    """The OpenSSH command line and ``ssh://`` URI for the Connection icon."""
    login = login_name(user.username, session.activity.name, resource.name)
    return LaunchInfo(
        command=f"ssh -p {DEFAULT_PORT} {login}@{proxy_host}",
        uri=f"ssh://{login}@{proxy_host}:{DEFAULT_PORT}",
    )


@hookimpl
def pamcore_register_protocols(register: Callable[[ProtocolHandler], None]) -> None:
    register(
        ProtocolHandler(
            name="ssh",
            default_port=DEFAULT_PORT,
            description="Secure Shell (OpenSSH, PuTTY, MobaXterm) through the DirectConnect proxy",
            listener_factory=None,  # the proxy listener lands with the asyncssh work
            client_launch=client_launch,
            connection_test=probe_ssh,
        )
    )
