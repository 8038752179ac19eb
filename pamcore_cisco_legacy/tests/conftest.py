"""Real legacy peers: OpenSSH ``sshd`` offering only group1 / aes128-cbc,3des-cbc / hmac-sha1 /
ssh-rsa,ssh-dss (engineering notes §2), and an IOS-like device started here: an asyncssh
server with only those algorithms, banner ``SSH-2.0-Cisco-1.25``, a 1024-bit RSA host key,
keyboard-interactive login, ``Router>`` / ``enable`` / ``Router#`` and configuration mode.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
import pytest

from pamcore.plugins import PluginHost, build_plugin_host
from pamcore.testing import LoopThread

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
LEGACY_SSHD = (
    "KexAlgorithms diffie-hellman-group1-sha1\nCiphers aes128-cbc,3des-cbc\nMACs hmac-sha1\n"
    "HostKeyAlgorithms ssh-rsa,ssh-dss\nPubkeyAcceptedAlgorithms +ssh-rsa,ssh-dss\n"
)
#: What the emulated device offers: nothing asyncssh or OpenSSH enables by default but SHA-1.
IOS_ALGORITHMS = {
    "kex_algs": ["diffie-hellman-group1-sha1"],
    "encryption_algs": ["aes128-cbc", "3des-cbc"],
    "mac_algs": ["hmac-sha1"],
    "compression_algs": ["none"],
    "signature_algs": ["ssh-rsa"],
}
SHOW_VERSION = "Cisco IOS Software, C2960 Software (C2960-LANBASEK9-M), Version 12.2(55)SE"


@pytest.fixture
def plugin_host() -> PluginHost:
    """The ``core`` fixture with the installed plugins: pamcore-ssh and this one."""
    return build_plugin_host(strict=True)


def free_port() -> int:
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


@dataclass
class LegacySshd:
    port: int
    client_key: Path
    host_key_line: str
    #: Its DSA host key (``ssh-dss``), to pin when a test wants that negotiated.
    dsa_key_line: str


@pytest.fixture(scope="session")
def legacy_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LegacySshd]:
    """Root key login; host keys RSA (ssh-rsa, SHA-1 signatures) and DSA (ssh-dss)."""
    if os.geteuid() != 0 or not os.path.exists(SSHD) or not shutil.which("ssh-keygen"):
        pytest.skip("needs root and openssh-server")
    d = tmp_path_factory.mktemp("legacy_sshd")
    for name, kind in (("host_rsa", "rsa"), ("host_dsa", "dsa"), ("client_key", "ed25519")):
        subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(d / name)], check=True)
    shutil.copy(d / "client_key.pub", d / "authorized_keys")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    for _attempt in range(3):
        port = free_port()
        (d / "sshd_config").write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_rsa\nHostKey {d}/host_dsa\n"
            f"PidFile none\nAuthorizedKeysFile {d}/authorized_keys\nStrictModes no\n"
            f"PermitRootLogin prohibit-password\nPasswordAuthentication no\nUsePAM no\n"
            f"PrintMotd no\nPrintLastLog no\n{LEGACY_SSHD}"
        )
        proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(d / "sshd_config")],
            stdout=subprocess.DEVNULL,
            stderr=(d / "sshd.log").open("w"),
        )
        try:
            _wait_banner(port, proc)
            break
        except RuntimeError:
            proc.kill()
            proc.wait()
    else:
        pytest.fail(f"legacy sshd did not start: {(d / 'sshd.log').read_text()}")

    def line(path: Path) -> str:
        return " ".join(path.read_text().split()[:2])

    yield LegacySshd(port, d / "client_key", line(d / "host_rsa.pub"), line(d / "host_dsa.pub"))
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- the IOS-like device ---------------------------------------------------------------------


@dataclass
class IosDevice:
    """An emulated device's state: local users (``username NAME secret X``), the enable
    secret, and the startup configuration ``write memory`` saves to a file."""

    startup_file: Path
    enable_secret: str
    running: dict[str, str] = field(default_factory=dict)
    port: int = 0
    host_key_line: str = ""
    #: Every ``enable`` answer: True when it was right.
    enable_attempts: list[bool] = field(default_factory=list)

    def startup(self) -> dict[str, str]:
        if not self.startup_file.exists():
            return {}
        return dict(json.loads(self.startup_file.read_text()))


class _IosServer(asyncssh.SSHServer):
    """Keyboard-interactive only (``Password:``), as IOS with ``login local``."""

    def __init__(self, device: IosDevice) -> None:
        self._device = device

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return True

    def get_kbdint_challenge(
        self, username: str, lang: str, submethods: str
    ) -> asyncssh.auth.KbdIntChallenge:
        return "", "", "", [("Password: ", False)]

    def validate_kbdint_response(
        self, username: str, responses: asyncssh.auth.KbdIntResponse
    ) -> bool:
        return len(responses) == 1 and self._device.running.get(username) == responses[0]


async def _ios_cli(device: IosDevice, process: asyncssh.SSHServerProcess[str]) -> None:
    """``Router>``; ``enable`` asks ``Password:`` (no echo) for ``Router#``; ``configure
    terminal`` / ``username NAME secret X`` / ``end``; ``write memory`` saves."""
    out = process.stdout
    if process.command is not None:  # IOS runs one exec command and closes
        known = process.command == "show version"
        out.write(f"{SHOW_VERSION}\r\n" if known else "% Invalid input detected\r\n")
        process.exit(0 if known else 1)
        return
    mode = ">"
    while True:
        out.write(f"\r\nRouter{'(config)#' if mode == 'config' else mode}")
        try:
            line = (await process.stdin.readline()).strip()
        except asyncssh.BreakReceived:
            continue
        if not line and process.stdin.at_eof():
            break
        words = line.split()
        if not words:
            continue
        if mode == ">" and "enable".startswith(words[0]) and len(words[0]) >= 2:
            out.write("Password: ")
            process.channel.set_echo(False)
            answer = (await process.stdin.readline()).strip()
            process.channel.set_echo(True)
            ok = answer == device.enable_secret
            device.enable_attempts.append(ok)
            out.write("\r\n" if ok else "\r\n% Access denied\r\n")
            mode = "#" if ok else ">"
        elif words[0] in ("exit", "logout") and mode != "config":
            break
        elif line == "show version":
            out.write(f"\r\n{SHOW_VERSION}\r\n")
        elif mode == "#" and line in ("configure terminal", "conf t"):
            out.write("\r\nEnter configuration commands, one per line.  End with CNTL/Z.")
            mode = "config"
        elif mode == "#" and line in ("write memory", "wr"):
            device.startup_file.write_text(json.dumps(device.running))
            out.write("\r\nBuilding configuration...\r\n[OK]")
        elif mode == "config" and words[0] in ("end", "exit"):
            mode = "#"
        elif mode == "config" and len(words) == 4 and words[0::2] == ["username", "secret"]:
            device.running[words[1]] = words[3]
        else:
            out.write("\r\n% Invalid input detected at '^' marker.\r\n")
    process.exit(0)


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
                lambda: _IosServer(device),
                "127.0.0.1",
                0,
                server_host_keys=[key],
                server_version="Cisco-1.25",
                process_factory=lambda process: _ios_cli(device, process),
                **(IOS_ALGORITHMS if legacy else {}),
            )

        server = loop.run(go())
        servers.append(server)
        device.port = server.get_port()
        device.host_key_line = " ".join(key.export_public_key("openssh").decode().split()[:2])
        return device

    yield start
    for server in servers:
        loop.loop.call_soon_threadsafe(server.close)
    loop.close()
