"""The demo as ``make run`` starts it, on a fresh instance: ``pamcore demo`` prepares the
demo's SSH target, ``pamcore demo start`` runs it, ``pamcore run`` serves; the real ``ssh``
client through the proxy gets a shell as an ephemeral ``pamdemo-`` account on that target,
the connection is recorded, and ``pamcore demo clean`` (``make clean-demo``) removes the
target and the accounts. Runs as root on this machine; touches only the accounts its own
instance created (named in its audit log) and its own instance folder."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest
from sqlalchemy import select

from pamcore.core import open_core
from pamcore.demo import DEMO_PASSWORD
from pamcore.demo_target import FOLDER, demo_accounts, load_target, remove_account
from pamcore.lifecycle import Status
from pamcore.model import ActivitySession, Recording
from pamcore.openssh import sshd_missing
from pamcore.testing.sshd import CLIENT_OPTS, free_port

pytestmark = pytest.mark.e2e

#: Run in the shell on the demo target: says which account it runs as.
COMMAND = "echo as:$(id -un); exit"
PAMCORE = str(Path(sys.executable).parent / "pamcore")


def pamcore(instance: Path, *args: str) -> str:
    done = subprocess.run(
        [PAMCORE, "--instance", str(instance), *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[Path]:
    """A fresh instance with the demo and its target on a free port; afterwards whatever of
    it is left is removed (the target stopped, its accounts deleted)."""
    if missing := sshd_missing():
        pytest.skip(f"the demo SSH target {missing}")
    path = tmp_path / "instance"
    pamcore(path, "init")
    try:
        yield path
    finally:
        if (target := load_target(path)) is not None:
            subprocess.run([PAMCORE, "--instance", str(path), "demo", "stop"], check=False)
            assert target.pid_file.exists() is False
        core = open_core(path)
        try:
            for name, uid in demo_accounts(core).items():
                remove_account(name, uid)
        finally:
            core.dispose()


def serve_on_free_ports(instance: Path) -> tuple[int, int]:
    """Free ports for the dashboard and the SSH proxy in ``pamcore.toml`` (never the default
    ones: a real ``make run`` may be going), a short scheduler interval; (web, ssh)."""
    config = instance / "pamcore.toml"
    web, ssh = free_port(), free_port()
    text = re.sub(r"(?m)^web_port = \d+$", f"web_port = {web}", config.read_text())
    text = re.sub(r"(?m)^scheduler_interval = .*$", "scheduler_interval = 0.2", text)
    config.write_text(text.replace("# ssh = 4422", f"ssh = {ssh}"))
    return web, ssh


def test_make_run_demo_connects_records_and_cleans(instance: Path) -> None:
    target_port = free_port()
    assert f"port {target_port}" in pamcore(instance, "demo", "--target-port", str(target_port))
    pamcore(instance, "demo", "start")
    assert "listening" in pamcore(instance, "demo", "start")  # a second make run: unchanged
    _web, ssh_port = serve_on_free_ports(instance)
    log = instance.parent / "run.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [PAMCORE, "--instance", str(instance), "run"], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while not port_open(ssh_port):
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        request = ["--as", "alice", "--activity", "Linux Admin", "--resource", "web01"]
        pamcore(instance, "sessions", "create", *request)
        pamcore(instance, "sessions", "approve", "1", "--as", "carol")
        login = "alice+Linux-Admin+web01@127.0.0.1"
        child = pexpect.spawn(
            "ssh",
            ["-o", "BatchMode=no", *CLIENT_OPTS, "-tt", "-p", str(ssh_port), login, COMMAND],
            timeout=30,
            encoding="utf-8",
        )
        child.expect("assword")
        child.sendline(DEMO_PASSWORD)
        child.expect(r"as:(pamdemo-alice-[0-9a-f]{6})")
        account = child.match.group(1)
        child.expect(pexpect.EOF)
        child.close()
        assert subprocess.run(["getent", "passwd", account], check=False).returncode == 0
        pamcore(instance, "sessions", "end", "1", "--as", "alice")
        core = open_core(instance)
        try:
            deadline = time.monotonic() + 20
            while True:
                with core.reader() as db:
                    session = db.get(ActivitySession, 1)
                    assert session is not None and session.login_account == account
                    recordings = db.scalars(select(Recording.path)).all()
                    if session.status == Status.ENDED and recordings:
                        break
                assert time.monotonic() < deadline, (session.status, log.read_text())
                time.sleep(0.2)
            assert (core.config.recordings_path / recordings[0]).stat().st_size > 0
        finally:
            core.dispose()
        # the post-session action removed the account from this machine
        assert subprocess.run(["getent", "passwd", account], check=False).returncode == 2
    finally:
        server.terminate()
        server.wait(15)

    target = load_target(instance)
    assert target is not None
    cleaned = pamcore(instance, "demo", "clean")
    assert "accounts deleted" in cleaned
    assert not (instance / FOLDER).exists() and not port_open(target_port)
