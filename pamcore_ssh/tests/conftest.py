"""Real peers for the SSH proxy tests: an asyncssh echo target, OpenSSH ``sshd`` on a
loopback port (root, key login), and the proxy listener on its own event-loop thread."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncssh
import pytest
from proxy_world import World, proxy_world
from ssh_peers import EchoTarget, Sshd

from pamcore.testing import LoopThread
from pamcore.testing.sshd import keygen, public_line, sshd_missing, start_sshd, stop


class _EchoServer(asyncssh.SSHServer):
    def __init__(self, username: str, password: str) -> None:
        self._creds = (username, password)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return (username, password) == self._creds


async def _echo(process: asyncssh.SSHServerProcess[bytes]) -> None:
    process.stderr.write(b"ready\n")
    while data := await process.stdin.read(65536):
        process.stdout.write(data)
    process.exit(0)


@pytest.fixture
def echo_target_factory() -> Iterator[Callable[[str, str], EchoTarget]]:
    """An asyncssh server that lets one account in and echoes stdin (says ``ready`` first)."""
    loop = LoopThread()
    servers: list[asyncssh.SSHAcceptor] = []

    def start(username: str, password: str) -> EchoTarget:
        key = asyncssh.generate_private_key("ssh-ed25519")

        async def go() -> asyncssh.SSHAcceptor:
            return await asyncssh.create_server(
                lambda: _EchoServer(username, password),
                "127.0.0.1",
                0,
                server_host_keys=[key],
                process_factory=_echo,
                encoding=None,
                line_editor=False,
            )

        server = loop.run(go())
        servers.append(server)
        line = " ".join(key.export_public_key("openssh").decode().split()[:2])
        return EchoTarget(("127.0.0.1", server.get_port()), line)

    yield start
    for server in servers:
        loop.loop.call_soon_threadsafe(server.close)
    loop.close()


# -- OpenSSH sshd as the target (docs/design/ssh.md §8) --------------------------------------------


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    if missing := sshd_missing():
        pytest.skip(f"{missing} (sshd as the target)")
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host_ed25519", "client_key", "other_host"):
        keygen(d / name)
    shutil.copy(d / "client_key.pub", d / "authorized_keys")
    proc, port = start_sshd(
        d,
        f"HostKey {d}/host_ed25519\nAuthorizedKeysFile {d}/authorized_keys\nStrictModes no\n"
        f"PermitRootLogin prohibit-password\nPasswordAuthentication no\nUsePAM no\n"
        f"PrintMotd no\nPrintLastLog no\nMaxStartups 200\nSubsystem sftp internal-sftp\n",
    )
    yield Sshd(
        port,
        d / "client_key",
        public_line(d / "host_ed25519.pub"),
        public_line(d / "other_host.pub"),
    )
    stop(proc)


@pytest.fixture
def world(tmp_path: Path, sshd: Sshd) -> Iterator[World]:
    """The proxy in front of the real ``sshd`` with alice's Available session on web01
    (:func:`proxy_world.proxy_world`). The browser-terminal tests define their own."""
    if not shutil.which("ssh"):
        pytest.skip("needs openssh-client")
    with proxy_world(tmp_path, sshd) as world:
        yield world
