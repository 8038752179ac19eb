"""OpenSSH ``ssh``, ``sftp``, ``scp`` and PuTTY's ``plink`` through the proxy to a real
``sshd``: exit codes, stderr, stdin, passwords and file integrity."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest
from pamcore_ssh.hostkeys import fingerprint, proxy_host_key
from proxy_world import PASSWORD, SSH_OPTS, World


def test_exec_exit_codes_stderr_and_stdin_eof(world: World) -> None:
    result = world.ssh("alice+linux-admin+web01", "echo hello; echo oops >&2; exit 7")
    assert (result.returncode, result.stdout, result.stderr) == (7, "hello\n", "oops\n")
    piped = subprocess.run(
        [
            "ssh",
            *SSH_OPTS,
            "-i",
            str(world.key),
            "-p",
            str(world.port),
            "alice+web01@127.0.0.1",
            "wc -c",
        ],
        input="twelve bytes",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert piped.stdout.strip() == "12"
    assert world.ssh("alice", "whoami").stdout == "root\n"  # the menu's only choice
    actions = world.audit_actions()
    assert "connection.opened" in actions and "connection.closed" in actions
    for _ in range(50):  # the proxy records the close asynchronously
        if world.session().status == "available":
            break
        time.sleep(0.1)
    assert world.session().status == "available"


def test_plink_with_password(world: World) -> None:
    if not shutil.which("plink"):
        pytest.skip("needs putty-tools")
    proxy_key = fingerprint(proxy_host_key(world.core))  # created at start, kept in the vault
    result = subprocess.run(
        [
            "plink",
            "-batch",
            "-ssh",
            "-pw",
            PASSWORD,
            "-P",
            str(world.port),
            "-hostkey",
            proxy_key,
            "alice+Linux-Admin+web01@127.0.0.1",
            "echo plink-ok; exit 3",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 3, result.stderr
    assert "plink-ok" in result.stdout


def test_sftp_and_scp_round_trip(world: World) -> None:
    data = world.tmp / "blob"
    data.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    remote = f"/tmp/pamcore-e2e-{os.getpid()}"
    opts = [*SSH_OPTS, "-i", str(world.key), "-P", str(world.port)]
    login = "alice+web01@127.0.0.1"
    subprocess.run(["scp", *opts, str(data), f"{login}:{remote}.scp"], check=True, timeout=60)
    subprocess.run(
        ["scp", *opts, f"{login}:{remote}.scp", str(world.tmp / "back.scp")], check=True, timeout=60
    )
    batch = world.tmp / "batch"
    batch.write_text(
        f"put {data} {remote}.sftp\nget {remote}.sftp {world.tmp / 'back.sftp'}\n"
        f"rm {remote}.sftp\nrm {remote}.scp\n"
    )
    subprocess.run(
        ["sftp", *opts, "-b", str(batch), login], check=True, timeout=60, capture_output=True
    )
    for name in ("back.scp", "back.sftp"):
        assert subprocess.run(["cmp", str(data), str(world.tmp / name)]).returncode == 0
