"""The ``rdp`` protocol registration: default port, ``.rdp`` file for DirectConnect, probe,
resource settings, the dashboard's ``.rdp`` download, the listener's certificate at
``pamcore init``. Session ends reach the listener's relays through the core's watch
(:mod:`pamcore.proxywatch`).

Plugin modules do no I/O at import time; everything happens inside the hooks.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import quote

from pamcore import hookimpl
from pamcore.proxy import login_name
from pamcore.registry import LaunchInfo, ProtocolHandler, ResourceSetting
from pamcore_rdp.certs import certificate_info
from pamcore_rdp.probe import probe_rdp
from pamcore_rdp.proxy.listener import RdpListener
from pamcore_rdp.rdpfile import MEDIA_TYPE, clipboard_allowed, rdp_file
from pamcore_rdp.settings import SETTINGS

if TYPE_CHECKING:
    from pamcore.core import Pamcore
    from pamcore.model import ActivitySession, Resource, User

#: Port of pamcore's RDP proxy; 4489 keeps clear of a host's own RDP on 3389.
DEFAULT_PORT = 4489
CERTIFICATE_PAGE = "/rdp/certificate"


def file_name(resource_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", resource_name) + ".rdp"


def client_launch(
    session: ActivitySession, resource: Resource, user: User, proxy_host: str, proxy_port: int
) -> LaunchInfo:
    """The ``.rdp`` file for the Connection icon (downloaded through :mod:`pamcore_rdp.web`,
    which adds a one-time routing token), and the FreeRDP command line with the
    DirectConnect login for people who type into their client."""
    login = login_name(user.username, session.activity.name, resource.name)
    return LaunchInfo(
        command=shlex.join(
            ["xfreerdp", f"/v:{proxy_host}:{proxy_port}", f"/u:{login}", "/sec:tls"]
        ),
        file=(
            file_name(resource.name),
            MEDIA_TYPE,
            rdp_file(proxy_host, login, proxy_port, clipboard=clipboard_allowed(session)),
        ),
        file_url=f"/rdp/file/{session.id}/{quote(resource.name, safe='')}",
        links=(("Check the proxy's certificate fingerprint", CERTIFICATE_PAGE),),
    )


@hookimpl
def pamcore_register_blueprints(register: Callable[..., None]) -> None:
    """The ``.rdp`` download with its routing token and the certificate page (imported
    here: Flask only when the dashboard is built)."""
    from pamcore_rdp.web import bp

    register(bp)


@hookimpl
def pamcore_register_commands(register: Callable[..., None]) -> None:
    """``pamcore rdp certificate``: where the listener's certificate is, its fingerprints."""
    from pamcore_rdp.cli import rdp

    register(rdp)


@hookimpl
def pamcore_init_instance(core: Pamcore) -> list[str]:
    """Create the self-signed certificate (kept if it exists) or check the operator's pair,
    so a broken pair is found at init, not by the first user, and the fingerprint can be
    published before anyone connects."""
    found = certificate_info(core)
    return [f"proxy certificate SHA-256 {found.sha256} ({found.source}, {found.cert_path})"]


@hookimpl
def pamcore_register_protocols(register: Callable[[ProtocolHandler], None]) -> None:
    register(
        ProtocolHandler(
            name="rdp",
            default_port=DEFAULT_PORT,
            description="Remote Desktop (mstsc, RDCMan, FreeRDP) through the DirectConnect proxy",
            listener_factory=RdpListener,
            client_launch=client_launch,
            connection_test=probe_rdp,
        )
    )


@hookimpl
def pamcore_register_resource_settings(register: Callable[[ResourceSetting], None]) -> None:
    """``rdp.security``, ``rdp.nla_mechanism``, ``rdp.domain`` (:mod:`pamcore_rdp.settings`)."""
    for setting in SETTINGS:
        register(setting)
