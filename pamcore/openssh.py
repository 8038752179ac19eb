"""OpenSSH ``sshd`` on a loopback port with a configuration of its own: the demo's SSH
target (``pamcore demo start``) and the tests' real SSH peers. Needs root and
``openssh-server``; nothing here reads or changes the machine's own sshd.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

#: Absolute: sshd re-executes itself.
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
#: Privilege separation directory sshd requires (absent in containers until sshd ran once).
PRIVSEP_DIR = "/run/sshd"


def sshd_missing() -> str | None:
    """Why sshd cannot run here, or ``None``."""
    if os.geteuid() != 0 or not os.path.exists(SSHD) or not shutil.which("ssh-keygen"):
        return "needs root and openssh-server"
    return None


def keygen(path: Path, kind: str = "ed25519") -> None:
    """A new key pair without a passphrase: ``path`` (0600) and ``path.pub``."""
    command = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)]
    subprocess.run(command, check=True)  # noqa: S603 (fixed command, ssh-keygen from PATH)


def public_line(path: Path) -> str:
    """``type base64`` of an OpenSSH ``.pub`` file, without its comment."""
    return " ".join(path.read_text().split()[:2])


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


def launch_sshd(config: Path, log: Path, detached: bool = False) -> subprocess.Popen[bytes]:
    """``sshd -D -e -f config`` with its log in ``log``; ``detached`` puts it in a session
    of its own, so it outlives the command that started it and the terminal's Ctrl+C."""
    os.makedirs(PRIVSEP_DIR, mode=0o755, exist_ok=True)
    with log.open("w") as out:
        return subprocess.Popen(  # noqa: S603 (SSHD is an absolute path)
            [SSHD, "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=out,
            start_new_session=detached,
        )
