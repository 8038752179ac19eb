"""The ``rdp`` protocol registration: default port, ``.rdp`` file for DirectConnect, probe.

Plugin modules do no I/O at import time; everything happens inside the hooks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from pamcore import hookimpl
from pamcore.directconnect import login_name
from pamcore.registry import LaunchInfo, ProtocolHandler, ResourceSetting
from pamcore_rdp.probe import probe_rdp
from pamcore_rdp.settings import SETTINGS

if TYPE_CHECKING:
    from pamcore.model import ActivitySession, Resource, User

#: Port of pamcore's RDP proxy; 4489 keeps clear of a host's own RDP on 3389.
DEFAULT_PORT = 4489
MEDIA_TYPE = "application/x-rdp"


def rdp_file(proxy_host: str, login: str, port: int = DEFAULT_PORT) -> bytes:
    """The ``.rdp`` file mstsc / RDCMan / FreeRDP open.

    CredSSP is switched off so the client does not ask for a password up front: the proxy
    shows its inline prompt and injects the session's credential on the target side.
    """
    settings = [
        f"full address:s:{proxy_host}:{port}",
        f"username:s:{login}",
        "enablecredsspsupport:i:0",
        "authentication level:i:2",
        "prompt for credentials:i:0",
        "negotiate security layer:i:1",
        "screen mode id:i:2",
        "use multimon:i:0",
        "redirectclipboard:i:1",
        "audiomode:i:0",
        "autoreconnection enabled:i:1",
    ]
    return ("\r\n".join(settings) + "\r\n").encode("utf-8")


def client_launch(
    session: ActivitySession, resource: Resource, user: User, proxy_host: str
) -> LaunchInfo:
    """A ``.rdp`` file for the Connection icon, and the FreeRDP command line."""
    login = login_name(user.username, session.activity.name, resource.name)
    filename = re.sub(r"[^A-Za-z0-9._-]+", "-", resource.name) + ".rdp"
    return LaunchInfo(
        command=f"xfreerdp /v:{proxy_host}:{DEFAULT_PORT} /u:{login} /sec:tls",
        file=(filename, MEDIA_TYPE, rdp_file(proxy_host, login)),
    )


@hookimpl
def pamcore_register_protocols(register: Callable[[ProtocolHandler], None]) -> None:
    register(
        ProtocolHandler(
            name="rdp",
            default_port=DEFAULT_PORT,
            description="Remote Desktop (mstsc, RDCMan, FreeRDP) through the DirectConnect proxy",
            listener_factory=None,  # the proxy listener lands with the RDP proxy work
            client_launch=client_launch,
            connection_test=probe_rdp,
        )
    )


@hookimpl
def pamcore_register_resource_settings(register: Callable[[ResourceSetting], None]) -> None:
    """``rdp.security``, ``rdp.nla_mechanism``, ``rdp.domain`` (:mod:`pamcore_rdp.settings`)."""
    for setting in SETTINGS:
        register(setting)
