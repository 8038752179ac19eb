"""OpenSSH ``sshd`` on a free loopback port, for tests with a real SSH peer (the SSH and
Cisco plugins'). Needs root and ``openssh-server``; the caller writes the configuration
beyond the port, the address and the pid file.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

#: Absolute: sshd re-executes itself.
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
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


def sshd_missing() -> str | None:
    """Why sshd cannot run here, or ``None``."""
    if os.geteuid() != 0 or not os.path.exists(SSHD) or not shutil.which("ssh-keygen"):
        return "needs root and openssh-server"
    return None


def keygen(path: Path, kind: str = "ed25519") -> None:
    command = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)]
    subprocess.run(command, check=True)  # noqa: S603 (a test helper's fixed command)


def public_line(path: Path) -> str:
    """``type base64`` of an OpenSSH ``.pub`` file, without its comment."""
    return " ".join(path.read_text().split()[:2])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answering(port: int, proc: subprocess.Popen[bytes], seconds: float = 10) -> bool:
    """Whether the server on ``port`` sends an SSH banner before it exits or time is up."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), 1) as s:
                if s.recv(64).startswith(b"SSH-"):
                    return True
        except OSError:
            time.sleep(0.1)
    return False


def start_sshd(directory: Path, config: str) -> tuple[subprocess.Popen[bytes], int]:
    """``sshd -D`` with ``config`` on a free port; three tries, since the port may be taken
    before sshd binds it. Fails the test with sshd's log when it does not answer."""
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation (containers)
    for _attempt in range(3):
        port = free_port()
        (directory / "sshd_config").write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nPidFile none\n{config}"
        )
        with (directory / "sshd.log").open("w") as log:
            proc = subprocess.Popen(  # noqa: S603 (SSHD is an absolute path)
                [SSHD, "-D", "-e", "-f", str(directory / "sshd_config")],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
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
