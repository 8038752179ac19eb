"""SSH relay benchmark: direct OpenSSH vs ProxyJump through an OpenSSH bastion vs pamcore.

Issue 4's "Done when": bulk throughput, ``ssh ... true`` time, keystroke echo latency
(p50/p99) and N idle sessions with memory per session, side by side in one run, with key
exchange (curve25519-sha256) and cipher (aes128-gcm@openssh.com) pinned for fairness
(notes/ssh.md §4, §9). Needs root, openssh-server and openssh-client; it starts two sshd
on loopback ports (target and bastion) and removes everything it made.

The pamcore column is "not available yet": the proxy listener lands with the rest of
issue 4, and this script gains its row then.

    .venv/bin/python bench/ssh_relay.py [--mib 200] [--runs 3] [--idle 50]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
KEX = "curve25519-sha256"
CIPHER = "aes128-gcm@openssh.com"
NOT_AVAILABLE = "not available yet"


@dataclass
class Result:
    route: str
    mib_per_s: float | None = None
    true_ms: float | None = None
    echo_ms: tuple[float, float] | None = None  # p50, p99
    idle_kib: float | None = None  # memory per idle session on the middle (or target) host


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


def client_config(d: Path, target: int, bastion: int) -> Path:
    """One ssh_config for every route, so only the route differs between columns."""
    cfg = d / "ssh_config"
    cfg.write_text(
        f"Host *\n  User root\n  IdentityFile {d}/client\n  IdentitiesOnly yes\n"
        f"  BatchMode yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
        f"  LogLevel ERROR\n  KexAlgorithms {KEX}\n  Ciphers {CIPHER}\n"
        f"  ControlMaster no\n  ControlPath none\n"
        f"Host bastion\n  HostName 127.0.0.1\n  Port {bastion}\n"
        f"Host direct\n  HostName 127.0.0.1\n  Port {target}\n"
        f"Host jump\n  HostName 127.0.0.1\n  Port {target}\n  ProxyJump bastion\n"
    )
    return cfg


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


def idle_sessions(cmd: list[str], n: int, server_pid: int) -> float:
    """Open ``n`` idle PTY sessions; memory added on the server side per session (KiB)."""
    before = tree_pss_kib(server_pid)
    procs = []
    try:
        for _ in range(n):
            procs.append(
                subprocess.Popen(
                    [*cmd, "echo up; exec sleep 3600"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                )
            )
        for p in procs:
            assert p.stdout
            p.stdout.readline()
        time.sleep(1)
        return (tree_pss_kib(server_pid) - before) / n
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def measure(
    route: str, cmd: Callable[..., list[str]], server_pid: int, a: argparse.Namespace
) -> Result:
    r = Result(route)
    secs = timed([*cmd(), f"head -c {a.mib}M /dev/zero"], a.runs)
    r.mib_per_s = a.mib / secs
    r.true_ms = timed([*cmd(), "true"], a.runs * 3) * 1000
    r.echo_ms = echo_latency(cmd("-tt"))
    r.idle_kib = idle_sessions(cmd("-tt"), a.idle, server_pid)
    return r


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def report(results: list[Result], a: argparse.Namespace) -> None:
    print(
        f"\nkex {KEX}, cipher {CIPHER}; {a.mib} MiB bulk, median of {a.runs} runs; "
        f"{a.idle} idle sessions"
    )
    head = f"{'route':<32}{'MiB/s':>10}{'true ms':>10}{'echo p50':>10}{'echo p99':>10}"
    print(head + f"{'KiB/idle session':>18}")
    for r in results:
        p50, p99 = r.echo_ms or (None, None)
        print(
            f"{r.route:<32}{fmt(r.mib_per_s, '.0f'):>10}{fmt(r.true_ms, '.0f'):>10}"
            f"{fmt(p50, '.2f'):>10}{fmt(p99, '.2f'):>10}{fmt(r.idle_kib, '.0f'):>18}"
        )
    direct, jump = results[0], results[1]
    assert direct.mib_per_s and jump.mib_per_s and direct.true_ms and jump.true_ms
    print(
        "\nratios (ProxyJump / direct): "
        f"throughput {jump.mib_per_s / direct.mib_per_s:.2f}x, "
        f"ssh true {jump.true_ms / direct.true_ms:.2f}x, "
        f"echo p50 +{(jump.echo_ms or (0, 0))[0] - (direct.echo_ms or (0, 0))[0]:.2f} ms"
    )
    print(
        f"pamcore proxy: {NOT_AVAILABLE} (aim: throughput >= ProxyJump and >= 60% of direct,"
        " echo p50 within 0.5 ms of direct, 1,000 idle sessions at <= 64 KB each)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=200, help="bulk transfer size")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per figure")
    parser.add_argument("--idle", type=int, default=50, help="idle sessions to hold")
    a = parser.parse_args()
    if os.geteuid() != 0 or not os.path.exists(SSHD) or not shutil.which("ssh"):
        raise SystemExit("needs root, openssh-server and openssh-client")
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
            cfg = client_config(d, target_port, bastion_port)
            results = [
                measure("direct OpenSSH", lambda *o: ssh(cfg, "direct", *o), target.pid, a),
                measure(
                    "ProxyJump via OpenSSH bastion", lambda *o: ssh(cfg, "jump", *o), bastion.pid, a
                ),
                Result("pamcore proxy"),
            ]
        finally:
            for proc in (target, bastion):
                proc.terminate()
                proc.wait(5)
    report(results, a)


if __name__ == "__main__":
    main()
