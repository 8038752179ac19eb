"""What the SSH proxy offers its users, checked from outside by ``ssh-audit`` against the
running listener: a current OpenSSH server's defaults, less what the audit flags."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pamcore_ssh.listener import ProxyListener
from sqlalchemy import create_engine
from ssh_peers import run_listener

from pamcore.clock import FrozenClock
from pamcore.model import Base
from pamcore.plugins import build_plugin_host
from pamcore.testing import T0, LoopThread, make_core

#: The one warning left: curve25519, offered after the post-quantum hybrid for clients
#: without it, is not post-quantum itself.
POST_QUANTUM_NOTE = "does not provide protection against post-quantum attacks"
_FINDING = re.compile(r"\[(fail|warn)\] (.*)")


@pytest.fixture
def ssh_audit() -> str:
    """The ``ssh-audit`` program of the dev extras."""
    found = shutil.which("ssh-audit", path=str(Path(sys.executable).parent)) or shutil.which(
        "ssh-audit"
    )
    assert found, "ssh-audit is missing: install the dev extras (pip install -e '.[dev]')"
    return found


@pytest.fixture
def proxy_port(tmp_path: Path) -> Iterator[int]:
    """The SSH proxy listener on a free port, with its own instance and host key."""
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    (tmp_path / "instance").mkdir()
    core = make_core(tmp_path / "instance", url, FrozenClock(T0), build_plugin_host(strict=True))
    loop = LoopThread()
    listener = ProxyListener(core, "127.0.0.1", 0)
    try:
        yield run_listener(loop, listener)
    finally:
        loop.run(listener.stop())
        loop.close()
        core.dispose()


def findings(report: str) -> tuple[list[str], list[tuple[str, str, str]]]:
    """The algorithms offered, in order, and each ``(algorithm, level, message)`` flagged."""
    offered: list[str] = []
    flagged: list[tuple[str, str, str]] = []
    algorithm = ""
    for line in report.splitlines():
        if entry := re.match(r"\((kex|key|enc|mac)\) (\S+)", line):
            algorithm = entry.group(2)
            offered.append(algorithm)
        elif not line.startswith(" "):
            algorithm = ""  # a general or additional-info line, not an algorithm's
        if found := _FINDING.search(line):
            flagged.append((algorithm, found.group(1), found.group(2).strip()))
    return offered, flagged


def test_ssh_audit_finds_nothing_but_the_post_quantum_note_on_curve25519(
    ssh_audit: str, proxy_port: int
) -> None:
    result = subprocess.run(
        [ssh_audit, "--no-colors", "--skip-rate-test", "-p", str(proxy_port), "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    offered, flagged = findings(result.stdout)

    assert offered, result.stdout + result.stderr
    assert not [f for f in flagged if f[1] == "fail"], result.stdout
    warned = {algorithm for algorithm, _, message in flagged if message == POST_QUANTUM_NOTE}
    assert [f for f in flagged if f[2] != POST_QUANTUM_NOTE] == [], result.stdout
    assert warned <= {"curve25519-sha256", "curve25519-sha256@libssh.org"}, result.stdout
    assert offered[0] == "mlkem768x25519-sha256", offered  # the post-quantum hybrid first
    for gone in ("umac-64", "rsa2048-sha256", "ecdh-sha2-", "diffie-hellman", "hmac-sha1"):
        assert not [name for name in offered if name.startswith(gone)], offered
