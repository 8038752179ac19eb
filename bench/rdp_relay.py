"""RDP relay benchmark: xfreerdp -> pamcore's relay -> xrdp vs xfreerdp -> xrdp directly.

Issue 6's "Done when": connection setup time and relayed throughput, side by side in one
run. Needs root and the RDP test peers (``make`` installs them): it starts Xvfb and
xrdp + sesman on free display and port as the tests do (``pamcore_rdp/tests/rdp_targets.py``,
under the same machine-wide lock), creates the login ``rdpbench`` and removes what it started.

The pamcore route is Phase B as the listener runs it after a redirect token (the
stand-in in ``pamcore_rdp/tests/relay_standin.py``): TLS to the client with the proxy
certificate, TLS to xrdp, the Client Info rewritten with the vaulted password, then the
byte pump; the relay runs in this process, so its CPU time is this process's.

* **Setup**: from starting xfreerdp until xrdp-sesman logs the login (the target's own
  oracle; every run after a warm-up is a reconnection to the same session, so no Xorg
  start-up is counted), and for pamcore until the relay is established (Client Info
  through). Medians of ``--runs``.
* **Throughput**: what the client's socket received (``ss`` bytes_received) per second
  over ``--seconds`` while the session's xterm prints a directory listing as fast as it
  can: the rate xrdp's encoder reaches, which the relay must not lower; plus the relay's
  CPU time per MiB. ``--recorded`` adds a row with the session recorded.

    .venv/bin/python bench/rdp_relay.py [--runs 5] [--seconds 10] [--recorded]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pamcore_rdp" / "tests"))

from pamcore_rdp.proxy.listener import RdpListener
from peers import exclusive_peers, log_mark, missing_binaries
from rdp_display import CLIENT_BINARIES, XVFB_BINARIES, start_xfreerdp, start_xvfb
from rdp_targets import XRDP_BINARIES, XrdpTarget, ensure_unix_user, start_xrdp, xrdp_logged_in
from relay_standin import ALICE_PASSWORD, RESOURCE, Proxy, lab_session, make_instance

from pamcore.core import Pamcore
from pamcore.directconnect import login_name
from pamcore.testing import LoopThread

USER, PASSWORD = "rdpbench", "Bench-Rdp-Pw-1"
#: In the user's home: while it exists, the session prints as fast as xterm can.
BUSY = "bench-busy"
XSESSION = (
    "exec xterm -geometry 160x48+0+0 -bg navy -fg white -e "
    f"\"sh -c 'while :; do if [ -e $HOME/{BUSY} ]; then ls -lR /usr/share; "
    "else sleep 0.2; fi; done'\"\n"
)
#: How often the sesman log is read for the login line.
POLL = 0.01
SIZE = "/size:1024x768"


@dataclass
class Row:
    route: str
    setup_log: float
    setup_relay: float | None
    kib_per_s: float
    cpu_ms_per_mib: float | None


def bench_user() -> Path:
    """The login the bench uses, its session the busy xterm (replaces the navy marker);
    returns the switch file."""
    home = ensure_unix_user(USER, PASSWORD)
    (home / ".xsession").write_text(XSESSION)
    return home / BUSY


def logged_in(log: Path, since: int, timeout: float = 20.0) -> float:
    """When (monotonic) the sesman log got the login line after byte ``since``; polled
    every 10 ms (the tests' wait_for_log polls every 100 ms)."""
    pattern = xrdp_logged_in(USER)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with log.open("rb") as handle:
            handle.seek(since)
            if pattern.search(handle.read().decode("utf-8", "replace")):
                return time.monotonic()
        time.sleep(POLL)
    raise SystemExit(f"no login line in {log} within {timeout:g} s")


def instance(work: Path, name: str, stack: contextlib.ExitStack) -> Pamcore:
    """A throw-away pamcore instance (SQLite) for one route."""
    folder = work / re.sub(r"[^a-z]+", "-", name)
    folder.mkdir()
    core = make_instance(folder)
    stack.callback(core.dispose)
    return core


def direct_args(xrdp: XrdpTarget) -> list[str]:
    return [f"/v:127.0.0.1:{xrdp.port}", f"/u:{USER}", f"/p:{PASSWORD}", SIZE]


def received(port: int) -> int:
    """Bytes the client's TCP socket to ``port`` received (tcp_info, via ss)."""
    out = subprocess.run(
        ["ss", "-Htin", "state", "established", f"( dport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sum(int(n) for n in re.findall(r"bytes_received:(\d+)", out))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Route:
    """How the client reaches xrdp: its arguments, the port its socket goes to, and the
    in-process relay stand-in (``None``: direct, or the real listener)."""

    name: str
    args: list[str]
    port: int
    proxy: Proxy | None = None


def setup_once(xrdp: XrdpTarget, route: Route, display: str) -> tuple[float, float | None]:
    """(seconds until sesman logs the login, seconds until the relay is established), with
    the client on ``display``."""
    mark = log_mark(xrdp.sesman_log)
    started = time.monotonic()
    client = start_xfreerdp(route.args, display)
    try:
        logged = logged_in(xrdp.sesman_log, mark) - started
        relayed = None
        if route.proxy is not None:
            relay = route.proxy.live.get(timeout=10)
            assert relay.setup_seconds is not None, "relay not established"
            relayed = relay.started + relay.setup_seconds - started
    finally:
        client.finish()
    if route.proxy is not None:
        route.proxy.finished.get(timeout=10)
    time.sleep(1.0)  # xrdp notes the disconnection before the next reconnection
    return logged, relayed


def throughput(xrdp: XrdpTarget, route: Route, a: argparse.Namespace) -> tuple[float, float | None]:
    """(KiB/s the client received while the session is busy, relay CPU ms per MiB)."""
    mark = log_mark(xrdp.sesman_log)
    client = start_xfreerdp(route.args, a.display)
    try:
        logged_in(xrdp.sesman_log, mark)
        time.sleep(2.0)  # the first full-screen paint is not part of the figure
        a.busy.touch()
        time.sleep(1.0)
        before, cpu_before = received(route.port), cpu_seconds()
        time.sleep(a.seconds)
        got, cpu = received(route.port) - before, cpu_seconds() - cpu_before
    finally:
        a.busy.unlink(missing_ok=True)
        client.finish()
    if route.proxy is not None:
        route.proxy.finished.get(timeout=10)
    time.sleep(1.0)
    mib = got / (1024 * 1024)
    relaying = route.port != xrdp.port
    return got / 1024 / a.seconds, (cpu * 1000 / mib if relaying and mib else None)


def measure(
    xrdp: XrdpTarget, route: Route, a: argparse.Namespace, say: Callable[[str], None]
) -> Row:
    runs = [setup_once(xrdp, route, a.display) for _ in range(a.runs)]
    say(f"{route.name}: setup runs {', '.join(f'{log:.3f}' for log, _ in runs)} s")
    relayed = [r for _, r in runs if r is not None]
    rate, cpu = throughput(xrdp, route, a)
    return Row(
        route.name,
        statistics.median(log for log, _ in runs),
        statistics.median(relayed) if relayed else None,
        rate,
        cpu,
    )


class Listener:
    """pamcore's RDP listener (Phase A sign-in, redirect token, Phase B relay) in a
    loop thread of this process."""

    def __init__(self, core: Pamcore) -> None:
        self.loop = LoopThread()
        self.listener = RdpListener(core, "127.0.0.1", 0)
        self.loop.run(self.listener.start())
        self.port = self.listener.port

    def close(self) -> None:
        self.loop.run(self.listener.stop())
        self.loop.close()


def report(rows: list[Row], a: argparse.Namespace) -> None:
    print(
        f"\nRDP relay: xfreerdp -> xrdp on loopback, {SIZE[6:]}, medians of {a.runs} setups, "
        f"throughput over {a.seconds:g} s of a busy xterm\n"
    )
    print(
        f"{'route':<24}{'setup to sesman log':>21}{'to relay established':>23}"
        f"{'client received':>18}{'relay CPU':>16}"
    )
    for row in rows:
        relay = f"{row.setup_relay:.3f} s" if row.setup_relay is not None else "-"
        cpu = f"{row.cpu_ms_per_mib:.1f} ms/MiB" if row.cpu_ms_per_mib is not None else "-"
        print(
            f"{row.route:<24}{row.setup_log:>19.3f} s{relay:>23}"
            f"{row.kib_per_s:>12.1f} KiB/s{cpu:>16}"
        )
    direct = rows[0]
    for row in rows[1:]:
        print(
            f"\n{row.route} vs direct: setup {row.setup_log - direct.setup_log:+.3f} s "
            f"(x{row.setup_log / direct.setup_log:.2f}), "
            f"throughput x{row.kib_per_s / direct.kib_per_s:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed setups per route")
    parser.add_argument("--seconds", type=float, default=10.0, help="throughput window")
    parser.add_argument("--recorded", action="store_true", help="add a recorded pamcore row")
    a = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: xrdp-sesman starts the bench user's session")
    missing = missing_binaries(XVFB_BINARIES + XRDP_BINARIES + CLIENT_BINARIES + ("ss",))
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: run 'make' to install the RDP peers")

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    with contextlib.ExitStack() as stack:  # unwound in reverse: every peer is stopped
        stack.enter_context(exclusive_peers())
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rdpbench-")))
        a.busy = bench_user()
        stack.callback(a.busy.unlink, missing_ok=True)
        xvfb = start_xvfb("1280x800x24", work)
        stack.callback(xvfb.stop)
        a.display = xvfb.display
        xrdp = start_xrdp(work)
        stack.callback(xrdp.stop)
        direct = Route("direct xfreerdp -> xrdp", direct_args(xrdp), xrdp.port)
        routes = [direct]
        for name, recorded in [("pamcore relay", False), ("pamcore relay, recorded", True)]:
            if recorded and not a.recorded:
                continue
            core = instance(work, name, stack)
            proxy = Proxy(core, lab_session(core, xrdp.port, USER, PASSWORD, recording=recorded))
            stack.callback(proxy.close)
            routes.append(Route(name, proxy.client_args(), proxy.port, proxy))
        core = instance(work, "full", stack)
        lab_session(core, xrdp.port, USER, PASSWORD, recording=False)
        listener = Listener(core)
        stack.callback(listener.close)
        login = login_name("alice", "Desktop", RESOURCE)
        full_args = [f"/v:127.0.0.1:{listener.port}", f"/u:{login}", f"/p:{ALICE_PASSWORD}", SIZE]
        routes.append(Route("pamcore sign-in+redirect", full_args, listener.port))
        say("warm-up: first login starts the xrdp session")
        setup_once(xrdp, direct, a.display)
        rows = [measure(xrdp, route, a, say) for route in routes]
    report(rows, a)


if __name__ == "__main__":
    main()
