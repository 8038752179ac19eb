"""A pamcore cluster as docs/deploy.md describes it, on this machine: one PostgreSQL
database, two nodes (instance folders ``a`` and ``b``, as two machines would hold them) each
running ``pamcore proxy`` and ``pamcore worker`` as separate processes, and one
``pamcore web`` on node a. Node b shares a's keyring and audit key through its
``pamcore.toml`` (the shared mount the guide recommends) and holds copies of the other files.

The demo gives the cluster its users, resources and a real SSH target (web01, an ``sshd`` of
its own on a free port, creating ``pamdemo-`` accounts); every port is a free one.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pexpect

from pamcore.core import Pamcore, open_core
from pamcore.demo import DEMO_PASSWORD
from pamcore.demo_target import demo_accounts, load_target, remove_account
from pamcore.testing import create_pg_database, drop_pg_database
from pamcore.testing.sshd import CLIENT_OPTS, free_port

PAMCORE = str(Path(sys.executable).parent / "pamcore")
#: Instance files node b copies from node a (the keyring and audit key it reads from a's).
COPIED = ("web-secret.key", "rdp-proxy.crt", "rdp-proxy.key")
#: The nodes' claim and connection heartbeat timeout, seconds (30 by default).
HEARTBEAT_TIMEOUT = 5
#: Environment variables that would replace what a node's pamcore.toml says.
OVERRIDING = (
    "PAMCORE_INSTANCE",
    "PAMCORE_DATABASE_URL",
    "PAMCORE_MASTER_KEY",
    "PAMCORE_PLUGINS_DIR",
)


def pamcore(instance: Path, *args: str, check: bool = True, timeout: float = 90) -> str:
    done = subprocess.run(
        [PAMCORE, "--instance", str(instance), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def node_environment() -> dict[str, str]:
    """This environment without the settings that would override a node's own folder."""
    env = {k: v for k, v in os.environ.items() if k not in OVERRIDING}
    env["PAMCORE_LOG_LEVEL"] = "INFO"
    return env


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _end_with_parent() -> None:
    """In the child, before exec: receive SIGTERM when the test process dies, even by
    SIGKILL, so an interrupted run leaves no node behind (Linux ``PR_SET_PDEATHSIG``)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


@dataclass
class Node:
    """One node's instance folder and its ports."""

    name: str
    instance: Path
    ssh_port: int = field(default_factory=free_port)
    terminal_port: int = field(default_factory=free_port)
    rdp_port: int = field(default_factory=free_port)
    tcp_port: int = field(default_factory=free_port)
    #: ``--metrics-port`` of the node's proxy and worker processes.
    proxy_metrics: int = field(default_factory=free_port)
    worker_metrics: int = field(default_factory=free_port)

    def configure(self, template: str, web_port: int, shared: Path | None) -> None:
        """``pamcore.toml`` from ``template`` with this node's ports; ``shared``: the
        instance folder whose keyring and audit key this node reads."""
        text = re.sub(r"(?m)^web_port = \d+$", f"web_port = {web_port}", template)
        text = re.sub(r"(?m)^scheduler_interval = .*$", "scheduler_interval = 0.2", text)
        # a dead node's claims and connections are given up after HEARTBEAT_TIMEOUT seconds
        for setting in ("claim_timeout", "heartbeat_timeout"):
            text = re.sub(rf"(?m)^{setting} = .*$", f"{setting} = {HEARTBEAT_TIMEOUT}", text)
        if shared is not None:
            text = text.replace(
                "[pamcore]\n",
                f'[pamcore]\nmaster_key_path = "{shared / "master.key"}"\n'
                f'audit_key_path = "{shared / "audit.key"}"\n',
                1,
            )
        text = text.replace("# ssh = 4422", f"ssh = {self.ssh_port}")
        text = text.replace("# rdp = 4489", f"rdp = {self.rdp_port}\ntcp = {self.tcp_port}")
        text += f"\n[plugins.ssh]\nterminal_port = {self.terminal_port}\n"
        (self.instance / "pamcore.toml").write_text(text)


class Cluster:
    """The processes of the topology, started and stopped by :func:`running_cluster`."""

    def __init__(self, root: Path, database_url: str) -> None:
        self.root = root
        self.database_url = database_url
        self.a = Node("a", root / "a")
        self.b = Node("b", root / "b")
        self.web_port = free_port()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    # -- setting up ----------------------------------------------------------------------

    def prepare(self) -> None:
        a, b = self.a, self.b
        pamcore(a.instance, "init", "--database-url", self.database_url)
        pamcore(a.instance, "demo", "--target-port", str(free_port()))
        pamcore(a.instance, "demo", "start")
        template = (a.instance / "pamcore.toml").read_text()
        a.configure(template, self.web_port, None)
        b.instance.mkdir(mode=0o700)
        for name in COPIED:
            shutil.copy2(a.instance / name, b.instance / name)
        b.configure(template, self.web_port, a.instance)

    def start(self, name: str, node: Node, *command: str) -> subprocess.Popen[bytes]:
        log = (self.root / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [PAMCORE, "--instance", str(node.instance), *command],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=node_environment(),
            preexec_fn=_end_with_parent,
        )
        self.processes[name] = proc
        return proc

    def start_all(self) -> None:
        for node in (self.a, self.b):
            self.start_proxy(node)
            self.start_worker(node)
        self.start("web", self.a, "web")
        for port in (self.a.ssh_port, self.b.ssh_port, self.web_port):
            self.wait_for(lambda port=port: port_open(port), f"port {port}", 60)

    def start_proxy(self, node: Node) -> None:
        self.start(f"proxy-{node.name}", node, "proxy", "--metrics-port", str(node.proxy_metrics))

    def start_worker(self, node: Node) -> None:
        metrics = ("--metrics-port", str(node.worker_metrics))
        self.start(f"worker-{node.name}", node, "worker", "--interval", "0.2", *metrics)

    def kill(self, name: str) -> None:
        """``kill -9`` of one process (the others must go on)."""
        proc = self.processes.pop(name)
        proc.kill()
        proc.wait()

    def scrape(self, port: int, path: str = "/metrics") -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.read().decode()

    def logs(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
            for log in sorted(self.root.glob("*.log"))
        )

    def wait_for(self, ready: Any, what: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while not ready():
            for name, proc in self.processes.items():
                assert proc.poll() is None, f"{name} exited with {proc.returncode}\n{self.logs()}"
            assert time.monotonic() < deadline, f"waited {seconds} s for {what}\n{self.logs()}"
            time.sleep(0.1)

    def stop_all(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def core(self) -> Pamcore:
        return open_core(self.a.instance)

    # -- what people do ------------------------------------------------------------------

    def available_session(self, user: str = "alice") -> int:
        """A Linux Admin session on web01 for ``user``, approved by carol, once Available
        (a worker ran its pre-session action on the target)."""
        created = pamcore(
            self.a.instance,
            "--json",
            "sessions",
            "create",
            "--as",
            user,
            "--activity",
            "Linux Admin",
            "--resource",
            "web01",
        )
        session_id = int(json.loads(created)["session"]["id"])
        pamcore(self.a.instance, "sessions", "approve", str(session_id), "--as", "carol")
        self.wait_for(lambda: self.status(session_id) == "available", "Available", 60)
        return session_id

    def status(self, session_id: int) -> str:
        shown = pamcore(self.a.instance, "--json", "sessions", "show", str(session_id))
        return str(json.loads(shown)["status"])

    def shell(self, node: Node, user: str = "alice") -> pexpect.spawn:
        """An interactive shell through ``node``'s SSH proxy with the real ssh client."""
        child = pexpect.spawn(
            "ssh",
            [
                "-o",
                "BatchMode=no",
                *CLIENT_OPTS,
                "-tt",
                "-p",
                str(node.ssh_port),
                f"{user}+Linux-Admin+web01@127.0.0.1",
            ],
            timeout=40,
            encoding="utf-8",
        )
        child.expect("assword")
        child.sendline(DEMO_PASSWORD)
        child.sendline("echo ready-$((6*7))")
        child.expect("ready-42")
        return child

    def api(self, token: str, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.web_port}/api/v1{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            return json.loads(answer.read() or b"null")

    def api_token(self, user: str) -> str:
        made = pamcore(
            self.a.instance, "--json", "users", "token", "create", user, "--name", "topology"
        )
        return str(json.loads(made)["token"])

    # -- leaving nothing behind ----------------------------------------------------------

    def clean(self) -> None:
        if load_target(self.a.instance) is not None:
            pamcore(self.a.instance, "demo", "stop", check=False)
        with contextlib.suppress(Exception):
            core = self.core()
            try:
                for name, uid in demo_accounts(core).items():
                    remove_account(name, uid)
            finally:
                core.dispose()


@contextlib.contextmanager
def running_cluster(root: Path, admin_url: str) -> Iterator[Cluster]:
    url = create_pg_database(admin_url, template=None)
    cluster = Cluster(root, url)
    try:
        cluster.prepare()
        cluster.start_all()
        yield cluster
    finally:
        cluster.stop_all()
        cluster.clean()
        drop_pg_database(admin_url, url)
