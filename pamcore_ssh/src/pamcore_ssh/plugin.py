"""The ``ssh`` protocol registration: default port, proxy listener (with the browser
terminal beside it), DirectConnect launch string, probe; the browser terminal's dashboard
pages; and the proxy host key at ``pamcore init``. Session ends and extensions reach the
listener's connections through the core's watch (:class:`pamcore.proxy.LiveConnections`).

Plugin modules do no I/O at import time; everything happens inside the hooks.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import quote

import pluggy

from pamcore import hookimpl
from pamcore.proxy import login_name
from pamcore.registry import LaunchInfo, ProtocolHandler
from pamcore_ssh import hookspecs
from pamcore_ssh.actions import pamcore_register_actions as pamcore_register_actions
from pamcore_ssh.browser import terminal_port
from pamcore_ssh.hostkeys import fingerprint, proxy_host_key
from pamcore_ssh.listener import ProxyListener
from pamcore_ssh.probe import probe_ssh

if TYPE_CHECKING:
    from pamcore.core import Pamcore
    from pamcore.model import ActivitySession, Resource, User

#: Port of pamcore's SSH proxy; 4422 keeps clear of a host's own sshd on 22.
DEFAULT_PORT = 4422


def client_launch(
    session: ActivitySession, resource: Resource, user: User, proxy_host: str, proxy_port: int
) -> LaunchInfo:
    """The OpenSSH command line, the ``ssh://`` URI and the browser terminal's page for
    the Connection icon."""
    login = login_name(user.username, session.activity.name, resource.name)
    return LaunchInfo(
        command=shlex.join(["ssh", "-p", str(proxy_port), f"{login}@{proxy_host}"]),
        uri=f"ssh://{login}@{proxy_host}:{proxy_port}",
        terminal=f"/ssh/terminal/{session.id}/{quote(resource.name, safe='')}",
    )


def listener_factory(core: Pamcore, host: str, port: int) -> ProxyListener:
    return ProxyListener(core, host, port, terminal_port(core.config))


@hookimpl
def pamcore_addhooks(pluginmanager: pluggy.PluginManager) -> None:
    """The SSH hooks other plugins implement (:mod:`pamcore_ssh.hookspecs`); once per
    manager, since registering this module again replays the call."""
    added = getattr(pluginmanager.hook, "pamcore_ssh_algorithms", None)
    if added is None or not added.has_spec():
        pluginmanager.add_hookspecs(hookspecs)


@hookimpl
def pamcore_register_blueprints(register: Callable[..., None]) -> None:
    """The browser terminal's page and its token (imported here: Flask only when the
    dashboard is built)."""
    from pamcore_ssh.web import bp

    register(bp)


@hookimpl
def pamcore_register_commands(register: Callable[..., None]) -> None:
    """``pamcore ssh fingerprint``: the proxy's host key fingerprint, any time."""
    from pamcore_ssh.cli import ssh

    register(ssh)


@hookimpl
def pamcore_register_protocols(register: Callable[[ProtocolHandler], None]) -> None:
    register(
        ProtocolHandler(
            name="ssh",
            default_port=DEFAULT_PORT,
            description="Secure Shell (OpenSSH, PuTTY, MobaXterm) through the DirectConnect proxy",
            listener_factory=listener_factory,
            client_launch=client_launch,
            connection_test=probe_ssh,
        )
    )


@hookimpl
def pamcore_init_instance(core: Pamcore) -> list[str]:
    """Create the proxy's host key now (kept if it exists), so the operator can publish
    its fingerprint before the first user's ``ssh`` asks them to trust it."""
    return [f"proxy host key {fingerprint(proxy_host_key(core))}"]
