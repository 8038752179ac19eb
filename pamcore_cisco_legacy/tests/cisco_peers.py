"""The legacy peers' parts the tests name: the OpenSSH configuration that offers only legacy
algorithms, and an IOS-like device (an asyncssh server with only those algorithms, banner
``SSH-2.0-Cisco-1.25``, keyboard-interactive login, ``Router>`` / ``enable`` / ``Router#``,
configuration mode, ``write memory``, and ``ssh``/``telnet``/``connect`` to an onward host that
imitates the device's own prompt). The fixtures that start them are in conftest.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

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


@dataclass
class LegacySshd:
    port: int
    client_key: Path
    host_key_line: str
    #: Its DSA host key (``ssh-dss``), to pin when a test wants that negotiated.
    dsa_key_line: str


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
    #: What the onward host (reached with ``ssh``/``telnet``/``connect``) got as its
    #: ``enable`` password: a requester's host would keep it.
    onward_answers: list[str] = field(default_factory=list)

    def startup(self) -> dict[str, str]:
        if not self.startup_file.exists():
            return {}
        return dict(json.loads(self.startup_file.read_text()))


class IosServer(asyncssh.SSHServer):
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


async def onward_host(device: IosDevice, process: asyncssh.SSHServerProcess[str], to: str) -> None:
    """A host the requester controls, reached from the device: it shows the device's own
    ``Router>`` and asks ``Password:`` after ``enable``, keeping the answer; ``exit`` returns."""
    out = process.stdout
    out.write(f"\r\nTrying {to} ... Open\r\n")
    while True:
        out.write("\r\nRouter>")
        line = (await process.stdin.readline()).strip()
        if line in ("exit", "logout") or process.stdin.at_eof():
            out.write(f"\r\n[Connection to {to} closed by foreign host]\r\n")
            return
        if line == "enable":
            out.write("Password: ")
            process.channel.set_echo(False)
            device.onward_answers.append((await process.stdin.readline()).strip())
            process.channel.set_echo(True)
            out.write("\r\n% Access denied\r\n")


async def ios_cli(device: IosDevice, process: asyncssh.SSHServerProcess[str]) -> None:
    """``Router>``; ``enable`` asks ``Password:`` (no echo) for ``Router#``; ``configure
    terminal`` / ``username NAME secret X`` / ``end``; ``write memory`` saves; ``ssh``,
    ``telnet`` and ``connect`` open a session to :func:`onward_host`."""
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
        elif words[0] in ("ssh", "telnet", "connect") and mode != "config":
            await onward_host(device, process, words[-1])
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
