"""SSH relay benchmark: direct OpenSSH vs ProxyJump through an OpenSSH bastion vs pamcore.

Issue 4's "Done when": bulk throughput, ``ssh ... true`` time, keystroke echo latency
(p50/p99) and N idle sessions with memory per session, side by side in one run, with key
exchange (curve25519-sha256) and cipher (aes128-gcm@openssh.com) pinned for fairness
(docs/design/ssh.md §4, §9). Needs root, openssh-server and openssh-client; it starts two sshd
on loopback ports (target and bastion) and removes everything it made.

The pamcore route goes through ``pamcore proxy`` running as its own process on a
throw-away instance (so its RSS is its own): user ``alice`` signs in with her registered
key as ``alice+bench+web01`` and the proxy injects root's key from the vault. Both legs
are pinned: the client side by the same ssh_config as the other routes, the outgoing side
by the target sshd, which offers nothing but that key exchange and cipher. The bench
profile does not record (nor does ProxyJump); ``--recorded`` adds a row with recording.

Memory per idle session is the growth of the server side (the target sshd tree for
direct, the bastion sshd tree for ProxyJump: PSS; the proxy process: RSS) divided by the
sessions held. ``--profile FILE`` runs the proxy under cProfile and writes its stats there.

    .venv/bin/python bench/ssh_relay.py [--mib 200] [--runs 3] [--idle 200] [--recorded]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
KEX = "curve25519-sha256"
CIPHER = "aes128-gcm@openssh.com"
PAMCORE = Path(sys.executable).with_name("pamcore")
LOGIN = "alice+bench+web01"
LOGIN_RECORDED = "alice+bench-recorded+web01"


@dataclass
class Result:
    route: str
    mib_per_s: float | None = None
    true_ms: float | None = None
    echo_ms: tuple[float, float] | None = None  # p50, p99
    idle_kib: float | None = None  # memory per idle session on the middle (or target) host
    idle_note: str = ""
    extra: dict[str, float] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sshd(d: Path, name: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = d / f"{name}.conf"
    conf.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host\nPidFile none\n"
        f"AuthorizedKeysFile {d}/client.pub\nStrictModes no\nUsePAM no\n"
        f"PermitRootLogin prohibit-password\nPasswordAuthentication no\nPrintMotd no\n"
        f"PrintLastLog no\nMaxStartups 1000\nMaxSessions 1000\nAllowTcpForwarding yes\n"
        f"KexAlgorithms {KEX}\nCiphers {CIPHER}\n"
    )
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(conf)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 1) as s:
                if s.recv(64).startswith(b"SSH-"):
                    return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{name} sshd did not start")


def client_config(d: Path, target: int, bastion: int, proxy: int) -> Path:
    """One ssh_config for every route, so only the route differs between columns (the
    pamcore hosts come first: ssh takes the first value it finds, and ``Host *`` sets root)."""
    cfg = d / "ssh_config"
    cfg.write_text(
        f"Host pamcore\n  HostName 127.0.0.1\n  Port {proxy}\n  User {LOGIN}\n"
        f"Host pamcore-recorded\n  HostName 127.0.0.1\n  Port {proxy}\n  User {LOGIN_RECORDED}\n"
        f"Host *\n  User root\n  IdentityFile {d}/client\n  IdentitiesOnly yes\n"
        f"  BatchMode yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
        f"  LogLevel ERROR\n  KexAlgorithms {KEX}\n  Ciphers {CIPHER}\n"
        f"  ControlMaster no\n  ControlPath none\n"
        f"Host bastion\n  HostName 127.0.0.1\n  Port {bastion}\n"
        f"Host direct\n  HostName 127.0.0.1\n  Port {target}\n"
        f"Host jump\n  HostName 127.0.0.1\n  Port {target}\n  ProxyJump bastion\n"
    )
    return cfg


# -- pamcore: a throw-away instance and ``pamcore proxy`` as its own process ------------------


def pamcore_instance(d: Path, target_port: int, proxy_port: int) -> Path:
    """``pamcore init``, then alice with the client key, web01 (the target, host key pinned,
    root's key vaulted) and an Available session for each bench activity."""
    from pamcore.core import open_core
    from pamcore.model import LoginMode, UserKey
    from pamcore.services import scheduler
    from pamcore.services.sessions import SessionRequest, create_session
    from pamcore.testing import builders as b

    instance = d / "instance"
    subprocess.run(
        [str(PAMCORE), "--instance", str(instance), "init"], check=True, stdout=subprocess.DEVNULL
    )
    toml = instance / "pamcore.toml"
    toml.write_text(toml.read_text().replace("# ssh = 4422", f"ssh = {proxy_port}"))
    fp = subprocess.run(
        ["ssh-keygen", "-l", "-f", f"{d}/client.pub"], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    core = open_core(instance)
    try:
        with core.unit() as db:
            alice = b.make_user(db, "alice", password="Bench-alice-pw-1")
            pub = (d / "client.pub").read_text()
            db.add(UserKey(user=alice, name="bench", public_key=pub, fingerprint=fp))
            host_key = " ".join((d / "host.pub").read_text().split()[:2])
            web01 = b.make_resource(db, "web01", protocols={"ssh": target_port}, host_key=host_key)
            cred = b.make_credential(
                core,
                db,
                "web01 root",
                "root",
                private_key=(d / "client").read_text(),
                resource=web01,
            )
            ids = []
            for name, recording in (("Bench", False), ("Bench Recorded", True)):
                activity = b.make_activity(db, name, login_mode=LoginMode.MANAGED, credential=cred)
                profile = b.make_profile(db, name, max_duration_minutes=240, recording=recording)
                b.make_policy(db, name, profile, [activity], [web01], [alice])
                ids.append(create_session(core, db, alice, SessionRequest(name, ("web01",))).id)
        activated = scheduler.tick(core).activated
        if not set(ids) <= set(activated):
            raise SystemExit(f"bench sessions not Available (activated: {activated})")
    finally:
        core.dispose()
    return instance


@contextmanager
def pamcore_proxy(
    d: Path, instance: Path, port: int, profile: str | None
) -> Iterator[subprocess.Popen[bytes]]:
    """``pamcore proxy`` in its own process (under cProfile when ``profile`` is a file)."""
    cmd = [str(PAMCORE), "--instance", str(instance), "proxy"]
    if profile:
        cmd = [sys.executable, "-m", "cProfile", "-o", profile, *cmd]
    log = (d / "proxy.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"pamcore proxy did not start:\n{(d / 'proxy.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", port), 1) as s:
                    if s.recv(64).startswith(b"SSH-"):
                        break
            except OSError:
                time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()  # SIGTERM: a clean stop, so cProfile writes its stats
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def ssh(cfg: Path, host: str, *args: str) -> list[str]:
    return ["ssh", "-F", str(cfg), *args, host]


def timed(cmd: list[str], runs: int) -> float:
    """Median wall time in seconds of ``runs`` runs (after one warm-up)."""
    times = []
    for i in range(runs + 1):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def echo_latency(cmd: list[str], samples: int = 200) -> tuple[float, float]:
    """Round trip of one byte through a raw remote PTY running ``cat`` (ms, p50 and p99)."""
    proc = subprocess.Popen(
        [*cmd, "stty raw -echo; echo ready; exec cat"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        bufsize=0,
    )
    assert proc.stdin and proc.stdout
    seen = b""
    while b"ready" not in seen:
        seen += proc.stdout.read(1)
    time.sleep(0.2)
    rtts = []
    for _ in range(samples):
        start = time.perf_counter()
        proc.stdin.write(b"x")
        while proc.stdout.read(1) != b"x":
            pass
        rtts.append((time.perf_counter() - start) * 1000)
        time.sleep(0.005)
    proc.kill()
    proc.wait()
    rtts.sort()
    return rtts[len(rtts) // 2], rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))]


def tree_pss_kib(root: int) -> int:
    """Proportional set size of ``root`` and all its descendants (KiB)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def idle_sessions(
    cmd: list[str], n: int, memory: Callable[[], int]
) -> tuple[float, dict[str, float]]:
    """Open ``n`` idle PTY sessions; server-side memory added per session (KiB) and details."""
    before = memory()
    procs = []
    start = time.perf_counter()
    try:
        for _ in range(n):
            procs.append(
                subprocess.Popen(
                    [*cmd, "echo up; exec sleep 3600"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                )
            )
        opened = 0
        for p in procs:
            assert p.stdout
            # the target account's shell start-up may print first (root's rc files here)
            while line := p.stdout.readline():
                if line.startswith(b"up"):
                    opened += 1
                    break
        setup = time.perf_counter() - start
        time.sleep(2)
        held = memory()
        if not opened:
            raise SystemExit("no idle session opened")
        return (held - before) / opened, {
            "opened": opened,
            "setup_s": setup,
            "base_kib": before,
            "held_kib": held,
        }
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def measure(
    route: str,
    cmd: Callable[..., list[str]],
    memory: Callable[[], int] | None,
    a: argparse.Namespace,
) -> Result:
    r = Result(route)
    secs = timed([*cmd(), f"head -c {a.mib}M /dev/zero"], a.runs)
    r.mib_per_s = a.mib / secs
    r.true_ms = timed([*cmd(), "true"], a.runs * 3) * 1000
    r.echo_ms = echo_latency(cmd("-tt"))
    if memory is not None and a.idle:
        r.idle_kib, r.extra = idle_sessions(cmd("-tt"), a.idle, memory)
    return r


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def aim(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report(results: list[Result], a: argparse.Namespace) -> None:
    print(
        f"\nkex {KEX}, cipher {CIPHER} on every leg; {a.mib} MiB bulk, median of {a.runs} runs; "
        f"ssh true median of {a.runs * 3}; echo 200 samples; {a.idle} idle sessions"
    )
    head = f"{'route':<32}{'MiB/s':>10}{'true ms':>10}{'echo p50':>10}{'echo p99':>10}"
    print(head + f"{'KiB/idle session':>18}")
    for r in results:
        p50, p99 = r.echo_ms or (None, None)
        print(
            f"{r.route:<32}{fmt(r.mib_per_s, '.0f'):>10}{fmt(r.true_ms, '.0f'):>10}"
            f"{fmt(p50, '.2f'):>10}{fmt(p99, '.2f'):>10}{fmt(r.idle_kib, '.0f'):>18}"
        )
    if any(r.extra for r in results):
        print(
            "\nidle sessions (server side: "
            + "; ".join(
                f"{r.route}: {r.extra['opened']:.0f}/{a.idle} opened "
                f"in {r.extra['setup_s']:.1f} s, "
                f"{r.extra['base_kib'] / 1024:.1f} -> {r.extra['held_kib'] / 1024:.1f} MiB"
                for r in results
                if r.extra
            )
            + ")"
        )
    direct, jump, proxy = results[0], results[1], results[2]
    assert direct.mib_per_s and jump.mib_per_s and direct.true_ms and jump.true_ms
    assert proxy.mib_per_s and proxy.true_ms and direct.echo_ms and jump.echo_ms
    assert proxy.echo_ms
    print(
        "\nratios (ProxyJump / direct): "
        f"throughput {jump.mib_per_s / direct.mib_per_s:.2f}x, "
        f"ssh true {jump.true_ms / direct.true_ms:.2f}x, "
        f"echo p50 {jump.echo_ms[0] - direct.echo_ms[0]:+.2f} ms"
    )
    vs_jump = proxy.mib_per_s / jump.mib_per_s
    vs_direct = proxy.mib_per_s / direct.mib_per_s
    echo_gap = proxy.echo_ms[0] - direct.echo_ms[0]
    print(
        "ratios (pamcore / direct): "
        f"throughput {vs_direct:.2f}x, ssh true {proxy.true_ms / direct.true_ms:.2f}x "
        f"({proxy.true_ms - direct.true_ms:+.0f} ms), echo p50 {echo_gap:+.2f} ms, "
        f"p99 {proxy.echo_ms[1] - direct.echo_ms[1]:+.2f} ms"
    )
    print("\naims for the pamcore proxy:")
    print(f"  throughput >= ProxyJump:           {vs_jump:.2f}x ProxyJump   {aim(vs_jump >= 1)}")
    print(
        f"  throughput >= 60% of direct:       {vs_direct:.0%} of direct   {aim(vs_direct >= 0.6)}"
    )
    print(f"  echo p50 within 0.5 ms of direct:  {echo_gap:+.2f} ms         {aim(echo_gap <= 0.5)}")
    if proxy.idle_kib is not None:
        n = proxy.extra["opened"]
        print(
            f"  <= 64 KB per idle session (aim at 1,000; measured at {n:.0f}): "
            f"{proxy.idle_kib:.0f} KiB growth per session   {aim(proxy.idle_kib * 1.024 <= 64)}"
            f"\n    (proxy RSS {proxy.extra['base_kib'] / 1024:.1f} MiB idle -> "
            f"{proxy.extra['held_kib'] / 1024:.1f} MiB with {n:.0f} sessions; "
            f"whole RSS / N = {proxy.extra['held_kib'] / n:.0f} KiB)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=200, help="bulk transfer size")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per figure")
    parser.add_argument("--idle", type=int, default=200, help="idle sessions to hold (0: skip)")
    parser.add_argument(
        "--recorded", action="store_true", help="add a row for the proxy with recording on"
    )
    parser.add_argument("--profile", metavar="FILE", help="run the proxy under cProfile")
    a = parser.parse_args()
    if os.geteuid() != 0 or not os.path.exists(SSHD) or not shutil.which("ssh"):
        raise SystemExit("needs root, openssh-server and openssh-client")
    if not PAMCORE.exists():
        raise SystemExit(f"no {PAMCORE}: run with the project's venv python")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pamcore-bench-") as tmp:
        d = Path(tmp)
        for name in ("host", "client"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True
            )
        target, target_port = start_sshd(d, "target")
        bastion, bastion_port = start_sshd(d, "bastion")
        try:
            proxy_port = free_port()
            instance = pamcore_instance(d, target_port, proxy_port)
            cfg = client_config(d, target_port, bastion_port, proxy_port)
            results = [
                measure(
                    "direct OpenSSH",
                    lambda *o: ssh(cfg, "direct", *o),
                    lambda: tree_pss_kib(target.pid),
                    a,
                ),
                measure(
                    "ProxyJump via OpenSSH bastion",
                    lambda *o: ssh(cfg, "jump", *o),
                    lambda: tree_pss_kib(bastion.pid),
                    a,
                ),
            ]
            with pamcore_proxy(d, instance, proxy_port, a.profile) as proxy:
                results.append(
                    measure(
                        "pamcore proxy",
                        lambda *o: ssh(cfg, "pamcore", *o),
                        lambda: rss_kib(proxy.pid),
                        a,
                    )
                )
                if a.recorded:
                    results.append(
                        measure(
                            "pamcore proxy, recording",
                            lambda *o: ssh(cfg, "pamcore-recorded", *o),
                            None,
                            a,
                        )
                    )
        finally:
            for proc in (target, bastion):
                proc.terminate()
                proc.wait(5)
    report(results, a)


if __name__ == "__main__":
    main()
