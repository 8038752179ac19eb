"""OpenSSH ``sshd`` on a free loopback port, for tests with a real SSH peer (the SSH and
Cisco plugins'). Needs root and ``openssh-server``; the caller writes the configuration
beyond the port, the address and the pid file. Starting sshd is :mod:`pamcore.openssh`'s,
shared with the demo's SSH target.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from pamcore.openssh import answering, keygen, launch_sshd, public_line, sshd_missing

__all__ = [
    "CLIENT_OPTS",
    "free_port",
    "keygen",
    "public_line",
    "run_ssh",
    "sshd_missing",
    "start_sshd",
    "stop",
]
#: The OpenSSH client's options for a throw-away peer: no prompts, no known_hosts.
CLIENT_OPTS = [
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sshd(directory: Path, config: str) -> tuple[subprocess.Popen[bytes], int]:
    """``sshd -D`` with ``config`` on a free port; three tries, since the port may be taken
    before sshd binds it. Fails the test with sshd's log when it does not answer."""
    for _attempt in range(3):
        port = free_port()
        (directory / "sshd_config").write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nPidFile none\n{config}"
        )
        proc = launch_sshd(directory / "sshd_config", directory / "sshd.log")
        if answering(port, proc):
            return proc, port
        proc.kill()
        proc.wait()
    pytest.fail(f"sshd did not start: {(directory / 'sshd.log').read_text()}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the listener; per-connection children end with their connections."""
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_ssh(
    port: int,
    key: Path,
    login: str,
    *command: str,
    opts: tuple[str, ...] = (),
    timeout: float = 30,
) -> subprocess.CompletedProcess[str]:
    """The OpenSSH client as ``login`` on 127.0.0.1:``port`` with ``key``, without a
    terminal; ``opts`` come first, since ssh keeps the first value of an option."""
    where = ["-i", str(key), "-p", str(port), f"{login}@127.0.0.1"]
    return subprocess.run(  # noqa: S603 (a test helper's fixed command)
        ["ssh", *opts, *CLIENT_OPTS, *where, *command],  # noqa: S607 (ssh from PATH, as users run it)
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
