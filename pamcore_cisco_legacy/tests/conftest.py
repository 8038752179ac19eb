"""Fixtures with real legacy peers: OpenSSH ``sshd`` offering only group1 / aes128-cbc,3des-cbc
/ hmac-sha1 / ssh-rsa,ssh-dss (docs/design/ssh.md §2), and IOS-like devices started here
(:mod:`cisco_peers`); the core sees the installed plugins.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncssh
import pytest
from cisco_peers import IOS_ALGORITHMS, LEGACY_SSHD, IosDevice, IosServer, LegacySshd, ios_cli

from pamcore.plugins import PluginHost, build_plugin_host
from pamcore.testing import LoopThread
from pamcore.testing.sshd import keygen, public_line, sshd_missing, start_sshd, stop


@pytest.fixture
def plugin_host() -> PluginHost:
    """The ``core`` fixture with the installed plugins: pamcore-ssh and this one."""
    return build_plugin_host(strict=True)


@pytest.fixture(scope="session")
def legacy_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LegacySshd]:
    """Root key login; host keys RSA (ssh-rsa, SHA-1 signatures) and DSA (ssh-dss)."""
    if missing := sshd_missing():
        pytest.skip(missing)
    d = tmp_path_factory.mktemp("legacy_sshd")
    for name, kind in (("host_rsa", "rsa"), ("host_dsa", "dsa"), ("client_key", "ed25519")):
        keygen(d / name, kind)
    shutil.copy(d / "client_key.pub", d / "authorized_keys")
    proc, port = start_sshd(
        d,
        f"HostKey {d}/host_rsa\nHostKey {d}/host_dsa\nAuthorizedKeysFile {d}/authorized_keys\n"
        f"StrictModes no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        f"UsePAM no\nPrintMotd no\nPrintLastLog no\n{LEGACY_SSHD}",
    )
    yield LegacySshd(
        port, d / "client_key", public_line(d / "host_rsa.pub"), public_line(d / "host_dsa.pub")
    )
    stop(proc)


@pytest.fixture
def ios_devices(tmp_path: Path) -> Iterator[Callable[[bool], IosDevice]]:
    """Start IOS-like devices on free ports in one loop thread: ``legacy`` ones offer only
    the algorithms above (a 1024-bit RSA host key), others asyncssh's modern defaults."""
    loop = LoopThread()
    servers: list[asyncssh.SSHAcceptor] = []

    def start(legacy: bool = True) -> IosDevice:
        device = IosDevice(tmp_path / f"startup-{len(servers)}.json", "Enable-secret-9x2q")
        key = asyncssh.generate_private_key("ssh-rsa", key_size=1024 if legacy else 3072)

        async def go() -> asyncssh.SSHAcceptor:
            return await asyncssh.create_server(
                lambda: IosServer(device),
                "127.0.0.1",
                0,
                server_host_keys=[key],
                server_version="Cisco-1.25",
                process_factory=lambda process: ios_cli(device, process),
                **(IOS_ALGORITHMS if legacy else {}),
            )

        server = loop.run(go())
        servers.append(server)
        device.port = server.get_port()
        device.host_key_line = key.export_public_key("openssh").decode().strip()
        return device

    yield start
    for server in servers:
        loop.loop.call_soon_threadsafe(server.close)
    loop.close()
