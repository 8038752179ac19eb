"""The master-key rotation on a live instance (issue 18): ``pamcore vault rotate-key`` as a
separate process while the real ``pamcore run`` provisions sessions and relays SSH to a real
``sshd``, and ``kill -9`` of the rotation at several points, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from pamcore.cli.context import CliContext
from pamcore.cli.main import build_cli
from pamcore.clock import FrozenClock, utcnow
from pamcore.core import Pamcore, open_core
from pamcore.errors import PolicyDenied
from pamcore.instance_lock import instance_lock
from pamcore.lifecycle import Status
from pamcore.model import ActivitySession, LoginMode, Secret, UserKey
from pamcore.plugins import build_plugin_host
from pamcore.services import access, vault_keys
from pamcore.services.common import SystemActor
from pamcore.services.directory import get_user
from pamcore.services.tokens import create_token
from pamcore.testing import builders as b
from pamcore.testing.sshd import (
    free_port,
    keygen,
    public_line,
    run_ssh,
    sshd_missing,
    start_sshd,
    stop,
)
from pamcore.vault import Vault, read_keyring

PAMCORE = str(Path(sys.executable).parent / "pamcore")
#: Secrets seeded beside the sessions' own, so a rotation lasts 20 batches (of 200 rows) and
#: the server provisions sessions meanwhile.
FILLER = 4000
#: Scheduler ticks of the running server, so sessions are provisioned while a rotation runs.
TICK = 0.1
#: Hosts for sessions with a new password each (a user has one open session per resource).
HOSTS = [f"host{n:03}" for n in range(200)]


# -- an instance and the pamcore CLI as separate processes ------------------------------------


def init_instance(path: Path, database_url: str) -> Path:
    """``pamcore init`` on ``database_url`` (the command, run in this process)."""
    result = CliRunner().invoke(
        build_cli(),
        ["--instance", str(path), "init", "--database-url", database_url],
        obj=CliContext(instance=None),
    )
    assert result.exit_code == 0, result.output
    return path


def open_instance(path: Path, clock: Callable[[], dt.datetime] = utcnow) -> Pamcore:
    """This test's own view of the instance (built-in plugins only: it seeds and reads)."""
    return open_core(path, plugins=build_plugin_host(strict=True, entry_points=False), clock=clock)


def pamcore_cli(
    instance: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PAMCORE, "--instance", str(instance), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def pamcore_cli_together(
    instance: Path, *commands: list[str]
) -> list[subprocess.CompletedProcess[str]]:
    """Several CLI commands at once, each in its own process."""
    with ThreadPoolExecutor(len(commands)) as pool:
        return list(pool.map(lambda args: pamcore_cli(instance, *args), commands))


def cli_json(instance: Path, *args: str) -> dict[str, Any]:
    done = pamcore_cli(instance, "--json", *args)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def seed_secrets(core: Pamcore, count: int) -> dict[int, str]:
    """``count`` secrets in one unit; their plaintexts by secret id."""
    with core.unit() as db:
        stored = {
            core.vault.store(db, f"seeded secret {n}").id: f"seeded secret {n}"
            for n in range(count)
        }
    return stored


def secrets_by_key(core: Pamcore) -> dict[str, int]:
    with core.reader() as db:
        return dict(db.execute(select(Secret.key_id, func.count()).group_by(Secret.key_id)).all())


def max_secret_id(core: Pamcore) -> int:
    with core.reader() as db:
        return int(db.scalar(select(func.max(Secret.id))) or 0)


# -- 1. rotation while pamcore runs ------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """OpenSSH sshd letting root in with ``client_key`` only."""

    port: int
    client_key: Path
    host_key_line: str


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Target]:
    if missing := sshd_missing():
        pytest.skip(f"{missing} (sshd as the target)")
    if not shutil.which("ssh"):
        pytest.skip("needs openssh-client")
    d = tmp_path / "sshd"
    d.mkdir()
    for name in ("host_ed25519", "client_key"):
        keygen(d / name)
    shutil.copy(d / "client_key.pub", d / "authorized_keys")
    proc, port = start_sshd(
        d,
        f"HostKey {d}/host_ed25519\nAuthorizedKeysFile {d}/authorized_keys\nStrictModes no\n"
        f"PermitRootLogin prohibit-password\nPasswordAuthentication no\nUsePAM no\n"
        f"PrintMotd no\nPrintLastLog no\n",
    )
    try:
        yield Target(port, d / "client_key", public_line(d / "host_ed25519.pub"))
    finally:
        stop(proc)


def listen_on_free_ports(instance: Path) -> tuple[int, dict[str, int]]:
    """Write free ports for the dashboard and every installed proxy into ``pamcore.toml``
    (never the default ones: other tests and engineers run beside this one), and a short
    scheduler interval."""
    core = open_core(instance)  # with the installed plugins: which protocols listen
    try:
        protocols = sorted(core.hooks.protocols())
    finally:
        core.dispose()
    config = instance / "pamcore.toml"
    web = free_port()
    text = re.sub(r"(?m)^web_port = \d+$", f"web_port = {web}", config.read_text())
    text = re.sub(r"(?m)^scheduler_interval = .*$", f"scheduler_interval = {TICK}", text)
    assert re.findall(r"(?m)^\[.*\]$", text)[-1] == "[pamcore.proxy_ports]"  # appended to
    ports = {name: free_port() for name in protocols}
    config.write_text(text + "".join(f'"{name}" = {port}\n' for name, port in ports.items()))
    return web, ports


@dataclass
class Server:
    """``pamcore run`` as a real process, and alice's REST API client for it."""

    proc: subprocess.Popen[bytes]
    log: Path
    base: str
    token: str
    hosts: Iterator[str]

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(  # noqa: S310 (http to the server it started)
            f"{self.base}/api/v1{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return json.load(response)
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: {exc.code} {exc.read().decode()}") from None

    def request_session(self, activity: str, resource: str) -> int:
        created = self.api("POST", "/sessions", {"activity": activity, "resources": [resource]})
        return int(created["id"])

    def request_ephemeral(self) -> int:
        """A session with a new password, on a host of its own (one open session per
        activity and resource)."""
        return self.request_session("Ephemeral", next(self.hosts))

    def wait_available(self, session_ids: list[int], timeout: float = 30) -> None:
        """Until the server's scheduler has provisioned every one of them."""
        deadline = time.monotonic() + timeout
        for session_id in session_ids:
            while (
                status := self.api("GET", f"/sessions/{session_id}")["status"]
            ) != Status.AVAILABLE:
                assert status in (Status.SCHEDULED, Status.PROVISIONING), (session_id, status)
                assert time.monotonic() < deadline, f"session {session_id} still {status}"
                time.sleep(0.1)

    def reveal(self, session_id: int) -> str:
        return str(
            self.api("POST", f"/sessions/{session_id}/password", {"purpose": "view"})["password"]
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(instance: Path, web_port: int, token: str, hosts: list[str]) -> Server:
    log = instance.parent / "pamcore-run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [PAMCORE, "--instance", str(instance), "run"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = Server(proc, log, f"http://127.0.0.1:{web_port}", token, iter(hosts))
    deadline = time.monotonic() + 30
    while "pamcore is running" not in server.output():
        assert proc.poll() is None and time.monotonic() < deadline, server.output()
        time.sleep(0.1)
    assert "FAILED" not in server.output(), server.output()
    return server


class Requester(threading.Thread):
    """Alice asking for a session every ``pause`` seconds until told to stop."""

    def __init__(self, server: Server, pause: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.pause = pause
        self.made: list[int] = []
        self.error: BaseException | None = None
        self.halt = threading.Event()

    def run(self) -> None:
        try:
            while not self.halt.wait(self.pause):
                self.made.append(self.server.request_ephemeral())
        except BaseException as exc:  # reported by finish(), in the test's thread
            self.error = exc

    def finish(self) -> list[int]:
        self.halt.set()
        self.join(30)
        if self.error is not None:
            raise self.error
        return self.made


@dataclass
class Live:
    instance: Path
    server: Server
    core: Pamcore
    ssh_port: int
    user_key: Path

    def relay(self, word: str) -> None:
        """One SSH connection through the proxy, the vaulted root key injected by the server."""
        done = run_ssh(
            self.ssh_port, self.user_key, "alice+linux-admin+web01", f"echo {word}; whoami"
        )
        assert (done.returncode, done.stdout) == (0, f"{word}\nroot\n"), done.stderr

    def login_secrets(self, session_ids: list[int]) -> dict[int, int]:
        """Each session's ephemeral password: its secret id."""
        with self.core.reader() as db:
            rows = db.execute(
                select(ActivitySession.id, ActivitySession.login_secret_id).where(
                    ActivitySession.id.in_(session_ids)
                )
            )
            return {session_id: secret_id for session_id, secret_id in rows}

    def reveal_in_process(self, session_id: int) -> str:
        """The reveal service on this test's own core (a fresh vault read from the file)."""
        with self.core.unit() as db:
            shown = access.reveal_password(self.core, db, get_user(db, "alice"), session_id)
            return str(shown.password)


@pytest.fixture
def live(tmp_path: Path, empty_db_url: str, sshd: Target) -> Iterator[Live]:
    """A fresh instance served by ``pamcore run``: alice may request "Linux Admin" (the
    vaulted root key of the sshd target, injected by the SSH proxy) on web01, and
    "Ephemeral" (a new password per session, vaulted when the scheduler provisions it) on
    each of HOSTS; FILLER more secrets."""
    instance = init_instance(tmp_path / "instance", empty_db_url)
    web_port, ports = listen_on_free_ports(instance)
    user_key = tmp_path / "alice_key"
    keygen(user_key)
    fingerprint = subprocess.run(
        ["ssh-keygen", "-l", "-f", f"{user_key}.pub"], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    core = open_instance(instance)
    with core.unit() as db:
        alice = b.make_user(db, "alice")
        db.add(
            UserKey(
                user=alice,
                name="laptop",
                public_key=public_line(Path(f"{user_key}.pub")),
                fingerprint=fingerprint,
            )
        )
        web01 = b.make_resource(
            db, "web01", protocols={"ssh": sshd.port}, host_key=sshd.host_key_line
        )
        root = b.make_credential(
            core, db, "web01 root", "root", private_key=sshd.client_key.read_text(), resource=web01
        )
        hosts = [b.make_resource(db, name) for name in HOSTS]
        profile = b.make_profile(db, "standard", max_duration_minutes=60, allow_view_password=True)
        admin = b.make_activity(db, "Linux Admin", login_mode=LoginMode.MANAGED, credential=root)
        b.make_policy(db, "alice as root on web01", profile, [admin], [web01], [alice])
        ephemeral = b.make_activity(db, "Ephemeral", login_mode=LoginMode.EPHEMERAL)
        b.make_policy(db, "alice on the hosts", profile, [ephemeral], hosts, [alice])
        token = create_token(core, db, alice, "alice", "vault-online").token
    seed_secrets(core, FILLER)
    server = start_server(instance, web_port, token, HOSTS)
    try:
        yield Live(instance, server, core, ports["ssh"], user_key)
    finally:
        server.proc.terminate()
        try:
            server.proc.wait(15)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()
        core.dispose()


@pytest.mark.e2e
def test_rotation_while_pamcore_runs_loses_nothing(live: Live) -> None:
    server, core, instance = live.server, live.core, live.instance
    old_key = core.vault.active.key_id
    before = [server.request_ephemeral() for _ in range(3)]
    admin = server.request_session("Linux Admin", "web01")
    server.wait_available([*before, admin])
    live.relay("before")

    last_before = max_secret_id(core)
    rotation = subprocess.Popen(
        [PAMCORE, "--instance", str(instance), "--json", "vault", "rotate-key", "--yes"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert rotation.stderr is not None
    added = rotation.stderr.readline()
    assert re.match(r"key \w+ added to .* and active", added), added + rotation.communicate()[1]
    at_added = max_secret_id(core)
    requester = Requester(server)  # from now on, sessions keep being provisioned
    requester.start()
    out, err = rotation.communicate(timeout=60)
    at_done = max_secret_id(core)
    assert rotation.returncode == 0, err
    report = json.loads(out)
    new_key = report["key"]
    assert report["added"] and new_key != old_key and report["retirable"] == [old_key]
    during = requester.finish()
    after = [server.request_ephemeral() for _ in range(2)]
    sessions = [*before, *during, *after]
    server.wait_available(sessions)
    live.relay("after")

    # Sorted by when their secrets were written: before, during and after the rotation.
    secret_of = live.login_secrets(sessions)
    phases = {
        "before": [s for s in sessions if secret_of[s] <= last_before],
        "during": [s for s in sessions if at_added < secret_of[s] <= at_done],
        "after": [s for s in sessions if secret_of[s] > at_done],
    }
    assert all(phases.values()), {k: len(v) for k, v in phases.items()}
    served = {s: server.reveal(s) for s in sessions}  # decrypted by the running server
    assert len(set(served.values())) == len(sessions)
    assert {s: live.reveal_in_process(s) for s in sessions} == served

    # The CLI, each command its own process, side by side as at several terminals:
    # a password written during the rotation, the keys, and the old key's retirement,
    # refused within the grace period.
    revealed, status, refused = pamcore_cli_together(
        instance,
        ["--json", "sessions", "password", str(phases["during"][-1]), "--as", "alice"],
        ["--json", "vault", "status"],
        ["vault", "retire-key", old_key],
    )
    assert revealed.returncode == 0, revealed.stderr
    assert json.loads(revealed.stdout)["password"] == served[phases["during"][-1]]
    assert status.returncode == 0, status.stderr
    everything = sum(secrets_by_key(core).values())
    keys = json.loads(status.stdout)["keys"]
    assert [(k["key"], k["secrets"], k["active"]) for k in keys] == [
        (new_key, everything, "yes"),
        (old_key, 0, ""),
    ]
    assert json.loads(status.stdout)["undecryptable"] == []
    assert refused.returncode == PolicyDenied.exit_code, refused.stderr
    assert f"key {old_key} stopped being active" in refused.stderr

    # Once the grace period has passed (the core's clock), the old key retires.
    later = FrozenClock(utcnow() + vault_keys.RETIRE_GRACE + dt.timedelta(minutes=1))
    retiring = open_instance(instance, clock=later)
    try:
        vault_keys.retire_key(retiring, old_key, SystemActor("test"))
    finally:
        retiring.dispose()
    assert set(read_keyring(core.config.master_key_path)[0].keys) == {new_key}

    # The server, not restarted, follows: a new secret, reveals old and new, another relay.
    last = server.request_ephemeral()
    server.wait_available([last])
    served[last] = server.reveal(last)
    assert served[last] == live.reveal_in_process(last)
    assert [server.reveal(ids[0]) for ids in phases.values()] == [
        served[ids[0]] for ids in phases.values()
    ]
    live.relay("retired")
    assert secrets_by_key(core) == {new_key: everything + 1}
    log = server.output()
    assert "Traceback" not in log and "undecryptable" not in log
    assert not [s for s, password in served.items() if password in log]


# -- 2. kill -9 of the rotation ----------------------------------------------------------------

#: Secrets seeded for the kill test: 15 batches, so every kill point falls mid-rotation.
SEEDED = 3000


def rotate_until(instance: Path, stop_at: Callable[[str], bool] | None) -> list[str]:
    """``pamcore vault rotate-key`` killed with SIGKILL at the first progress line on stderr
    that ``stop_at`` accepts (``None``: at once, before it could do anything). Returns the
    lines it printed."""
    proc = subprocess.Popen(
        [PAMCORE, "--instance", str(instance), "vault", "rotate-key", "--yes"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen: list[str] = []
    if stop_at is not None:
        for line in proc.stderr:
            seen.append(line.rstrip("\n"))
            if stop_at(seen[-1]):
                break
    proc.kill()
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, seen  # killed, not finished
    return seen


def nth_batch(n: int) -> Callable[[str], bool]:
    lines: list[str] = []

    def stop_at(line: str) -> bool:
        if line.startswith("re-encrypted "):
            lines.append(line)
        return len(lines) == n

    return stop_at


def assert_intact(core: Pamcore, seeded: dict[int, str]) -> dict[str, int]:
    """Every secret decrypts with a vault read afresh from the keyring file, the file has
    one active key, and the rotation lock is free. Returns the secrets per key."""
    path = core.config.master_key_path
    marked = [line for line in path.read_text().splitlines() if line.startswith("*")]
    keyring, _ = read_keyring(path)
    assert len(marked) == 1 and marked[0].startswith(f"*{keyring.active_id}:")
    vault = Vault.from_key_file(path)
    with core.reader() as db:
        revealed = {s.id: vault.reveal(s) for s in db.scalars(select(Secret))}
    assert {i: revealed[i] for i in seeded} == seeded
    with instance_lock(core, vault_keys.LOCK, vault_keys.LOCK_DOING):
        pass
    uses = secrets_by_key(core)
    assert set(uses) <= set(keyring.keys)
    return uses


@pytest.mark.slow
def test_kill_9_anywhere_in_a_rotation_loses_nothing(tmp_path: Path, empty_db_url: str) -> None:
    instance = init_instance(tmp_path / "instance", empty_db_url)
    core = open_instance(instance)
    try:
        seeded = seed_secrets(core, SEEDED)
        total = sum(secrets_by_key(core).values())
        first = core.vault.active.key_id

        rotate_until(instance, None)
        assert assert_intact(core, seeded) == {first: total}

        seen = rotate_until(instance, lambda line: " added to " in line)
        second = seen[-1].split()[1]
        assert read_keyring(core.config.master_key_path)[0].active_id == second != first
        uses = assert_intact(core, seeded)
        assert uses[first] > 0

        rotate_until(instance, nth_batch(1))  # finishing: no new key
        uses = assert_intact(core, seeded)
        assert set(uses) == {first, second} and uses[first] > 0

        moved = uses[second]
        rotate_until(instance, nth_batch(3))
        uses = assert_intact(core, seeded)
        assert set(uses) == {first, second} and uses[second] > moved

        finished = cli_json(instance, "vault", "rotate-key", "--yes")
        assert (finished["added"], finished["key"]) == (False, second)
        assert finished["secrets"] == uses[first] and finished["retirable"] == [first]
        assert assert_intact(core, seeded) == {second: total}
        assert set(read_keyring(core.config.master_key_path)[0].keys) == {first, second}
    finally:
        core.dispose()
