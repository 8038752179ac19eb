"""Cluster bench on PostgreSQL: activation with one and with two ``pamcore worker``
processes, and SSH connections admitted per second through one and through two
``pamcore proxy`` nodes, side by side.

Activation: N sessions (default 2,000, no approval needed) are due at a steady rate (default
333 starts/s) from a moment just after the workers start; each worker is its own process
ticking every 0.2 s. Figures: drain time, activation lag p50/p99 (a session's
``session.available`` audit event carries its lag behind the start time), and a check that
every pre-session action ran exactly once (one ``action.note`` event per session).

Admission: M ``ssh ... true`` connections (default 200, 8 at a time) through the proxies, each
a DirectConnect login with the user's key, admission against the database and injection of
the target's vaulted key; with two proxies the clients alternate between them. The target
is a real ``sshd`` on a loopback port (the helpers of ``bench/ssh_relay.py``). Needs root,
openssh-server and openssh-client, and a PostgreSQL server (``--pg-url`` or
``PAMCORE_TEST_PG_URL``; ``scripts/test-postgres`` starts one).

    .venv/bin/python bench/cluster.py [-n 2000] [--rate 333] [-m 200] [--concurrency 8]

Figures, not a pass/fail test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import func, select, update
from ssh_relay import (
    LOGIN,
    PAMCORE,
    SSHD,
    client_config,
    free_port,
    pamcore_instance,
    pamcore_proxy,
    start_sshd,
)

from pamcore.clock import utcnow
from pamcore.core import open_core
from pamcore.lifecycle import Status
from pamcore.model import ActivitySession, AuditEvent, Role, User
from pamcore.services.sessions import SessionRequest, create_session
from pamcore.testing import builders as b
from pamcore.testing import create_pg_database, drop_pg_database

USERS = 100


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))]


def pamcore(instance: Path, *args: str) -> None:
    subprocess.run(
        [str(PAMCORE), "--instance", str(instance), *args], check=True, stdout=subprocess.DEVNULL
    )


@contextmanager
def database(admin_url: str) -> Iterator[str]:
    url = create_pg_database(admin_url, template=None)
    try:
        yield url
    finally:
        drop_pg_database(admin_url, url)


# -- activation -----------------------------------------------------------------------------


def seed_sessions(instance: Path, n: int) -> list[int]:
    """USERS users, a resource per USERS sessions, an activity with one audit-note action,
    and n Scheduled sessions due tomorrow (the run moves their start)."""
    core = open_core(instance)
    try:
        with core.unit() as db:
            users = [b.make_user(db, f"user{i:03d}", Role.USER) for i in range(USERS)]
            hosts = [b.make_resource(db, f"host{i:04d}") for i in range(-(-n // USERS))]
            activity = b.make_activity(db, "Admin", pre=[("audit-note", {"message": "up"})])
            activity.credential = b.make_credential(core, db, "root", "root", "Bench-root-1!")
            profile = b.make_profile(db, "Auto", max_duration_minutes=480)
            b.make_policy(db, "all", profile, [activity], hosts, users=users)
            user_ids = [u.id for u in users]
            host_names = [h.name for h in hosts]
        far = utcnow() + dt.timedelta(days=1)
        ids = []
        for i in range(n):
            with core.unit() as db:
                user = db.get(User, user_ids[i % USERS])
                request = SessionRequest("Admin", (host_names[i // USERS],), start=far)
                ids.append(create_session(core, db, user, request).id)
        return ids
    finally:
        core.dispose()


def activation(admin_url: str, workers: int, n: int, rate: float) -> dict[str, float]:
    with database(admin_url) as url, tempfile.TemporaryDirectory() as tmp:
        instance = Path(tmp) / "instance"
        pamcore(instance, "init", "--database-url", url)
        ids = seed_sessions(instance, n)
        core = open_core(instance)
        procs = []
        try:
            base = utcnow() + dt.timedelta(seconds=3)
            with core.unit() as db:
                for offset, sid in enumerate(ids):
                    db.execute(
                        update(ActivitySession)
                        .where(ActivitySession.id == sid)
                        .values(scheduled_start=base + dt.timedelta(seconds=offset / rate))
                    )
            for i in range(workers):
                log = (Path(tmp) / f"worker{i}.log").open("wb")
                procs.append(
                    subprocess.Popen(
                        [str(PAMCORE), "--instance", str(instance), "worker", "--interval", "0.2"],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
            deadline = time.monotonic() + 3 + n / rate + 600
            while True:
                with core.reader() as db:
                    done = db.scalar(
                        select(func.count())
                        .select_from(ActivitySession)
                        .where(ActivitySession.status == Status.AVAILABLE.value)
                    )
                if done >= n or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            drained = (utcnow() - base).total_seconds()
            with core.reader() as db:
                lags = [
                    float(d["lag_seconds"])
                    for d in db.scalars(
                        select(AuditEvent.details).where(AuditEvent.action == "session.available")
                    )
                ]
                actions = db.scalar(
                    select(func.count())
                    .select_from(AuditEvent)
                    .where(AuditEvent.action == "action.note")
                )
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(30)
            core.dispose()
    return {
        "activated": float(done or 0),
        "drain s": drained,
        "activated/s": (done or 0) / drained if drained > 0 else float("nan"),
        "lag p50 ms": pct(lags, 50) * 1000 if lags else float("nan"),
        "lag p99 ms": pct(lags, 99) * 1000 if lags else float("nan"),
        "actions per session": (actions or 0) / n,
    }


# -- admission ------------------------------------------------------------------------------


def node_settings(instance: Path, ssh: int, shared: Path | None = None) -> None:
    """The node's listeners on free ports (its SSH proxy on ``ssh``); ``shared``: the
    instance folder whose keyring and audit key this node reads, as nodes sharing a mount
    would."""
    toml = instance / "pamcore.toml"
    text = re.sub(r"(?m)^#? ?ssh = \d+$", f"ssh = {ssh}", toml.read_text())
    text = text.replace("# rdp = 4489", f"rdp = {free_port()}\ntcp = {free_port()}")
    if shared is not None:
        text = text.replace(
            "[pamcore]\n",
            f'[pamcore]\nmaster_key_path = "{shared / "master.key"}"\n'
            f'audit_key_path = "{shared / "audit.key"}"\n',
            1,
        )
    toml.write_text(text + f"\n[plugins.ssh]\nterminal_port = {free_port()}\n")


def second_node(first: Path, root: Path, ssh: int) -> Path:
    """A node folder beside ``first``: the same settings and database, its own ports."""
    node = root / "node-b"
    node.mkdir(mode=0o700)
    shutil.copy2(first / "pamcore.toml", node / "pamcore.toml")
    for name in ("rdp-proxy.crt", "rdp-proxy.key", "web-secret.key"):
        if (first / name).exists():
            shutil.copy2(first / name, node / name)
    node_settings(node, ssh, shared=first)
    return node


def admissions(cfg: Path, hosts: list[str], m: int, concurrency: int) -> tuple[float, int]:
    """Connections per second and failures: m ``ssh HOST true`` spread over ``hosts``."""

    def one(i: int) -> bool:
        done = subprocess.run(
            ["ssh", "-F", str(cfg), hosts[i % len(hosts)], "true"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
        return done.returncode == 0

    for i in range(len(hosts)):  # warm-up
        if not one(i):
            raise SystemExit(f"ssh through {hosts[i]} failed: see the proxy's log")
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        failed = sum(not ok for ok in pool.map(one, range(m)))
    return (m - failed) / (time.perf_counter() - start), failed


def admission(admin_url: str, m: int, concurrency: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="pamcore-bench-") as tmp, database(admin_url) as url:
        d = Path(tmp)
        for name in ("host", "client"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True
            )
        target, target_port = start_sshd(d, "target")
        try:
            port_a, port_b = free_port(), free_port()
            os.environ["PAMCORE_DATABASE_URL"] = url
            try:
                instance = pamcore_instance(d, target_port, port_a)
            finally:
                del os.environ["PAMCORE_DATABASE_URL"]
            toml = instance / "pamcore.toml"
            toml.write_text(
                toml.read_text().replace("[pamcore]\n", f'[pamcore]\ndatabase_url = "{url}"\n', 1)
            )
            node_b = second_node(instance, d, port_b)
            node_settings(instance, port_a)
            cfg = client_config(d, target_port, target_port, port_a)
            # first: ssh keeps the first value it finds, and ``Host *`` sets User root
            node_b_host = f"Host pamcore-b\n  HostName 127.0.0.1\n  Port {port_b}\n  User {LOGIN}\n"
            cfg.write_text(node_b_host + cfg.read_text())
            with pamcore_proxy(d, instance, port_a, None):
                rate, failed = admissions(cfg, ["pamcore"], m, concurrency)
                figures["1 proxy: connections/s"], figures["1 proxy: failed"] = rate, failed
                with pamcore_proxy(node_b, node_b, port_b, None):
                    rate, failed = admissions(cfg, ["pamcore", "pamcore-b"], m, concurrency)
                    figures["2 proxies: connections/s"] = rate
                    figures["2 proxies: failed"] = failed
        finally:
            target.terminate()
            target.wait(5)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="sessions to activate")
    parser.add_argument("--rate", type=float, default=333.0, help="starts per second")
    parser.add_argument("-m", type=int, default=200, help="SSH connections to admit")
    parser.add_argument("--concurrency", type=int, default=8, help="clients at a time")
    parser.add_argument("--pg-url", default=os.environ.get("PAMCORE_TEST_PG_URL"))
    a = parser.parse_args()
    if not a.pg_url:
        raise SystemExit("needs PostgreSQL: --pg-url or PAMCORE_TEST_PG_URL")
    if not PAMCORE.exists():
        raise SystemExit(f"no {PAMCORE}: run with the project's venv python")

    columns: dict[str, dict[str, float]] = {}
    for workers in (1, 2):
        print(f"activation with {workers} worker(s) ...", file=sys.stderr)
        columns[f"{workers} worker{'s' if workers > 1 else ''}"] = activation(
            a.pg_url, workers, a.n, a.rate
        )
    print(f"\npamcore cluster bench (PostgreSQL), {a.n} sessions due at {a.rate:.0f}/s")
    print(f"{'figure':<22}" + "".join(f"{k:>14}" for k in columns))
    for name in next(iter(columns.values())):
        print(f"{name:<22}" + "".join(f"{columns[k][name]:>14.2f}" for k in columns))

    if os.geteuid() != 0 or not Path(SSHD).exists():
        print("\nadmission skipped: needs root and openssh-server", file=sys.stderr)
        return
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    print(f"admission, {a.m} connections ...", file=sys.stderr)
    figures = admission(a.pg_url, a.m, a.concurrency)
    print(f"\nSSH admission through pamcore proxy, {a.m} x 'ssh true', {a.concurrency} at a time")
    for name, value in figures.items():
        print(f"{name:<26}{value:>10.1f}")


if __name__ == "__main__":
    main()
