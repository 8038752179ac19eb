"""Real peers for the SSH proxy tests: an asyncssh echo target, OpenSSH ``sshd`` on a
loopback port (root, key login), and the proxy listener on its own event-loop thread."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from pamcore.testing import LoopThread

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


@dataclass
class EchoTarget:
    address: tuple[str, int]
    host_key_line: str


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


# -- OpenSSH sshd as the target (notes §8) ----------------------------------------------------


@dataclass
class Sshd:
    port: int
    client_key: Path
    host_key_line: str
    other_host_key_line: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_banner(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("sshd exited")
        try:
            with socket.create_connection(("127.0.0.1", port), 1) as s:
                if s.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("sshd did not answer")


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    if os.geteuid() != 0 or not os.path.exists(SSHD):
        pytest.skip("needs root and openssh-server (sshd as the target)")
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host_ed25519", "client_key", "other_host"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True
        )
    shutil.copy(d / "client_key.pub", d / "authorized_keys")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    for _attempt in range(3):
        port = _free_port()
        (d / "sshd_config").write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\nPidFile none\n"
            f"AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\n"
            f"PermitRootLogin prohibit-password\nPasswordAuthentication no\nUsePAM no\n"
            f"PrintMotd no\nPrintLastLog no\nMaxStartups 200\nSubsystem sftp internal-sftp\n"
        )
        log = (d / "sshd.log").open("w")
        proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stdout=subprocess.DEVNULL, stderr=log
        )
        try:
            _wait_banner(port, proc)
            break
        except RuntimeError:
            proc.kill()
            proc.wait()
    else:
        pytest.fail(f"sshd did not start: {(d / 'sshd.log').read_text()}")

    def line(path: Path) -> str:
        return " ".join(path.read_text().split()[:2])

    yield Sshd(port, d / "client_key", line(d / "host_ed25519.pub"), line(d / "other_host.pub"))
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_listener(loop: LoopThread, listener: Any) -> int:
    loop.run(listener.start())
    return int(listener.port)
