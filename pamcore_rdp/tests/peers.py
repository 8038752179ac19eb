"""Generic pieces of the real RDP test peers (docs/design/rdp.md §4): processes in their own groups,
their logs, free ports and the machine-wide lock.

Every process runs in its own process group and is killed by group at teardown; every wait
has a deadline and fails with the log tail, so a broken peer never hangs the suite. A run
that is killed (``kill -9``) cannot tear down: the next run to take the lock ends what it
left. The X side is in ``rdp_display.py``, the targets in ``rdp_targets.py``; the pytest
fixtures that start them live in ``conftest.py``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

#: The Debian packages that provide the peers' binaries (the ``*_BINARIES`` of
#: ``rdp_display`` and ``rdp_targets``; Makefile DEB_PACKAGES installs these in CI).
DEBIAN_HINT = (
    "install the RDP test peers: apt-get install xrdp xorgxrdp freerdp2-x11 "
    "freerdp2-shadow-x11 winpr-utils xvfb xterm imagemagick xdotool x11-utils dbus-x11 "
    "(make test does this)"
)

#: Held by a test run while its peers run; a second run waits.
LOCK_PATH = Path("/tmp/pamcore-rdp-peers.lock")
#: In the environment of every peer this module starts: while the lock is held, a process
#: carrying it that the holder did not start is a leftover of a killed run.
PEER_ENV = {"PAMCORE_RDP_TEST_PEER": "1"}


class PeerError(RuntimeError):
    """A peer did not start or did not answer in time; the message carries its log tail."""


def missing_binaries(names: Sequence[str]) -> list[str]:
    return [name for name in names if shutil.which(name) is None]


@contextlib.contextmanager
def exclusive_peers(wait: float = 600.0) -> Iterator[None]:
    """Hold the machine-wide lock on the peers, after ending what a killed run left.

    Several engineers (and CI jobs) share one machine; xrdp-sesman can only run once per
    machine (port 3350), so a second test run waits here instead of failing on a bind.
    """
    with LOCK_PATH.open("a+") as handle:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    handle.seek(0)
                    raise PeerError(
                        f"another test run holds {LOCK_PATH} (pid {handle.read().strip()}) "
                        f"for more than {wait:.0f} s; wait for it or stop that run"
                    ) from None
                time.sleep(0.5)
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            stop_leftover_peers()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def stop_leftover_peers() -> None:
    """Stop the process group of every process carrying :data:`PEER_ENV` (call it holding
    the lock, before starting a peer: then every such process is a killed run's)."""
    marks = {f"{key}={value}".encode() for key, value in PEER_ENV.items()}
    groups = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to read
            if marks <= set((entry / "environ").read_bytes().split(b"\0")):
                groups.add(os.getpgid(int(entry.name)))
    groups.discard(os.getpgrp())
    for group in groups:
        stop_group(group)


# -- processes ---------------------------------------------------------------------------


def stop_group(group: int, grace: float = 5.0) -> None:
    """SIGTERM process group ``group``, then SIGKILL what is left after ``grace`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            os.killpg(group, 0)
            time.sleep(0.1)
        os.killpg(group, signal.SIGKILL)


@dataclass
class Process:
    """A child in its own process group (``start_new_session``), output to a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        return log_tail(self.log, lines)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the whole group (sessions xrdp-sesman started live in it), then SIGKILL."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(grace)
                return
            except subprocess.TimeoutExpired:
                continue


def start_process(
    name: str,
    argv: Sequence[str],
    log: Path,
    env: dict[str, str] | None = None,
    pass_fds: Sequence[int] = (),
) -> Process:
    """``argv`` in a new process group, marked with :data:`PEER_ENV`, output to ``log``."""
    with log.open("ab") as out:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **PEER_ENV, **(env or {})},
            start_new_session=True,
            pass_fds=pass_fds,
        )
    return Process(name, popen, log)


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])


def log_mark(path: Path) -> int:
    """The log's current size: pass it as ``since`` so a wait only sees what comes next."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def log_match(path: Path, text: str | re.Pattern[str], since: int = 0) -> str | None:
    """The first line after byte ``since`` containing ``text`` (a substring or a regex),
    or ``None``; read as bytes and decoded leniently (freerdp-shadow writes binary noise)."""
    pattern = text if isinstance(text, re.Pattern) else re.compile(re.escape(text))
    with contextlib.suppress(FileNotFoundError), path.open("rb") as handle:
        handle.seek(since)
        for line in handle.read().decode("utf-8", "replace").splitlines():
            if pattern.search(line):
                return line
    return None


def wait_for_log(path: Path, text: str | re.Pattern[str], timeout: float, since: int = 0) -> str:
    """:func:`log_match`, polled: fails the test with the log's tail when nothing matches
    within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while (line := log_match(path, text, since)) is None:
        if time.monotonic() > deadline:
            shown = text.pattern if isinstance(text, re.Pattern) else text
            raise AssertionError(
                f"{shown!r} not in {path} within {timeout} s; last lines:\n{log_tail(path)}"
            )
        time.sleep(0.1)
    return line


def wait_for_port(
    port: int, process: Process, timeout: float = 10.0, hosts: Sequence[str] = ("127.0.0.1",)
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise PeerError(
                f"{process.name} exited ({process.popen.returncode}):\n{process.tail()}"
            )
        for host in hosts:
            with contextlib.suppress(OSError), socket.create_connection((host, port), 0.5):
                return
        time.sleep(0.1)
    raise PeerError(f"{process.name} did not listen on {port} in {timeout} s:\n{process.tail()}")


def port_taken(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as error:
            return error.errno == errno.EADDRINUSE  # not "no IPv6 here"
    return False


def listener_pids(port: int) -> str:
    """Who holds ``port`` (for the error message), from ``ss``; empty when unknown."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, timeout=5
        ).stdout
        return " ".join(re.findall(r'users:\(\("[^)]*\)\)', out))
    return ""


def require_free_port(port: int, owner: str) -> None:
    if port_taken(port) or port_taken(port, "::1"):
        holder = listener_pids(port) or "another process"
        raise PeerError(
            f"port {port} ({owner}) is taken by {holder}; a leftover from an interrupted "
            f"test run or a system service — stop it and rerun"
        )
