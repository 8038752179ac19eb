"""Real RDP peers for the tests (notes §4): Xvfb displays, xrdp + xrdp-sesman as a target
without NLA, freerdp-shadow-cli as an NLA target, and the xfreerdp client.

Every process runs in its own process group and is killed by group at teardown; every wait
has a deadline and fails with the log tail, so a broken peer never hangs the suite. The
pytest fixtures that start these live in ``conftest.py``; this module holds the pieces.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from PIL import Image

#: Display of the xfreerdp client (notes §4.4) and of the shadow target's desktop (§4.3).
CLIENT_DISPLAY = ":99"
SHADOW_DISPLAY = ":98"
XRDP_PORT = 13389
SHADOW_PORT = 13390
#: xrdp reads sesman's port from /etc/xrdp/sesman.ini whatever ini it is given, so it is fixed.
SESMAN_PORT = 3350

XRDP_USER = ("rdptest", "Secr3t-Pw1")
SHADOW_USER = ("shadowuser", "Shad0w-Pw1")

#: Pixel colours the notes measured at (100, 100) (§4.4).
NAVY = (0, 0, 128)  # the xrdp session's xterm (.xsession below)
GREEN = (0, 99, 0)  # the shadow target's marker xterm ("darkgreen" renders as 0,99,0)
XRDP_DIALOG_BACKGROUND = (0, 156, 181)  # behind xrdp's own login dialog (no password given)
#: Per-channel slack in pixel checks: freerdp-shadow's lossy codecs round a colour by a
#: step or two now and then (seen: 0,100,0 for 0,99,0); the colours the tests tell apart
#: differ by far more.
PIXEL_SLACK = 6


def xrdp_logged_in(user: str) -> re.Pattern[str]:
    """The sesman log line of a successful login: a new session or a reconnection."""
    name = re.escape(user)
    return re.compile(
        rf"Session started successfully for user {name} |reconnected session: username {name}\b"
    )


#: Binaries per peer, so a fixture skips naming exactly what is missing.
XVFB_BINARIES = ("Xvfb", "xdpyinfo", "import")
XRDP_BINARIES = ("xrdp", "xrdp-sesman", "xterm", "useradd", "chpasswd")
SHADOW_BINARIES = ("freerdp-shadow-cli", "winpr-hash", "xterm", "Xvfb")
CLIENT_BINARIES = ("xfreerdp",)
#: The Debian packages that provide them (Makefile DEB_PACKAGES installs these in CI).
DEBIAN_HINT = (
    "install the RDP test peers: apt-get install xrdp xorgxrdp freerdp2-x11 "
    "freerdp2-shadow-x11 winpr-utils xvfb xterm imagemagick xdotool x11-utils dbus-x11 "
    "(make test does this)"
)

#: Held by a test run while it uses the fixed ports and displays; a second run waits.
LOCK_PATH = Path("/tmp/pamcore-rdp-peers.lock")


class PeerError(RuntimeError):
    """A peer did not start or did not answer in time; the message carries its log tail."""


def missing_binaries(names: Sequence[str]) -> list[str]:
    return [name for name in names if shutil.which(name) is None]


@contextlib.contextmanager
def exclusive_peers(wait: float = 600.0) -> Iterator[None]:
    """Hold the machine-wide lock on the fixed RDP ports and displays.

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
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# -- processes ---------------------------------------------------------------------------


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
    name: str, argv: Sequence[str], log: Path, env: dict[str, str] | None = None
) -> Process:
    with log.open("ab") as out:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
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


# -- Xvfb --------------------------------------------------------------------------------


@dataclass
class Xvfb:
    display: str
    process: Process

    def stop(self) -> None:
        self.process.stop()


def start_xvfb(display: str, geometry: str, workdir: Path) -> Xvfb:
    """An Xvfb on ``display``; fails clearly when the display is taken (its lock or socket)."""
    number = display.lstrip(":")
    lock, sock = Path(f"/tmp/.X{number}-lock"), Path(f"/tmp/.X11-unix/X{number}")
    if lock.exists() or sock.exists():
        owner = lock.read_text().strip() if lock.exists() else "?"
        raise PeerError(
            f"X display {display} is taken ({lock} names pid {owner}); stop that X server "
            f"or remove the stale {lock} and {sock}"
        )
    process = start_process(
        f"Xvfb {display}",
        ["Xvfb", display, "-screen", "0", geometry, "-nolisten", "tcp", "-noreset"],
        workdir / f"xvfb{number}.log",
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not process.alive():
            raise PeerError(f"Xvfb {display} exited:\n{process.tail()}")
        probe = subprocess.run(
            ["xdpyinfo", "-display", display],
            capture_output=True,
            timeout=5,
            check=False,
        )
        if probe.returncode == 0:
            return Xvfb(display, process)
        time.sleep(0.1)
    process.stop()
    raise PeerError(f"Xvfb {display} did not answer in 10 s:\n{process.tail()}")


def screenshot(display: str) -> Image.Image:
    """The whole root window of ``display`` (ImageMagick ``import``), as an RGB image."""
    png = subprocess.run(
        ["import", "-window", "root", "-display", display, "png:-"],
        capture_output=True,
        timeout=15,
        check=True,
    ).stdout
    return Image.open(io.BytesIO(png)).convert("RGB")


def screenshot_pixel(display: str, x: int, y: int) -> tuple[int, int, int]:
    pixel = screenshot(display).getpixel((x, y))
    assert isinstance(pixel, tuple)
    return (int(pixel[0]), int(pixel[1]), int(pixel[2]))


def wait_for_pixel(
    display: str, x: int, y: int, colour: tuple[int, int, int], timeout: float = 8.0
) -> None:
    """Poll the screen until (x, y) has ``colour`` (give or take ``PIXEL_SLACK`` per
    channel); fail with the last colour seen."""
    deadline = time.monotonic() + timeout
    while True:
        seen = screenshot_pixel(display, x, y)
        if all(abs(a - b) <= PIXEL_SLACK for a, b in zip(seen, colour, strict=True)):
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"pixel ({x}, {y}) on {display} is {seen}, not {colour}, after {timeout} s"
            )
        time.sleep(0.25)


# -- xfreerdp client ---------------------------------------------------------------------

#: What ``run_xfreerdp`` reports when the hard timeout ended a client that was still
#: connected, as timeout(1) does (notes §4.4: a working session stays up).
TIMED_OUT = 124


@dataclass
class XfreerdpRun:
    """A running xfreerdp; ``finish`` ends it (or lets it end) and returns (rc, output)."""

    process: subprocess.Popen[bytes]
    output: IO[bytes]
    _done: tuple[int, str] | None = field(default=None, init=False)

    def finish(self, seconds: float = 0.0) -> tuple[int, str]:
        if self._done is None:
            rc = TIMED_OUT
            try:
                rc = self.process.wait(seconds)
            except subprocess.TimeoutExpired:
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.process.pid, sig)
                    try:
                        self.process.wait(5)
                        break
                    except subprocess.TimeoutExpired:
                        continue
            self.output.seek(0)
            self._done = (rc, self.output.read().decode("utf-8", "replace"))
            self.output.close()
        return self._done


def start_xfreerdp(args: Sequence[str], display: str = CLIENT_DISPLAY) -> XfreerdpRun:
    """xfreerdp on ``display`` in its own process group; stdout and stderr merged (FreeRDP's
    WLog writes to stdout). ``/cert:ignore`` is added unless ``args`` choose a /cert mode."""
    argv = ["xfreerdp", *args]
    if not any(a.startswith("/cert") for a in args):
        argv.append("/cert:ignore")
    output = tempfile.TemporaryFile()  # noqa: SIM115 -- closed by XfreerdpRun.finish
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=subprocess.STDOUT,
        env={**os.environ, "DISPLAY": display},
        start_new_session=True,
    )
    return XfreerdpRun(process, output)


def run_xfreerdp(
    args: Sequence[str], seconds: float, display: str = CLIENT_DISPLAY
) -> tuple[int, str]:
    """Run xfreerdp for at most ``seconds`` and return (rc, output).

    rc is xfreerdp's own exit status, or 124 (:data:`TIMED_OUT`) when the hard timeout
    ended it still connected — the normal outcome of a session that came up. xfreerdp
    rejected by the server exits with 131/147 etc. on its own (notes §4.4).
    """
    return start_xfreerdp(args, display).finish(seconds)


def xdotool_type(display: str, text: str, enter: bool = True, timeout: float = 8.0) -> None:
    """Type ``text`` into the xfreerdp window on ``display``, then Return."""
    env = {**os.environ, "DISPLAY": display}
    window = focus_xfreerdp(display, timeout)
    subprocess.run(
        ["xdotool", "type", "--delay", "30", "--window", window, text],
        env=env,
        timeout=30,
        check=True,
    )
    if enter:
        subprocess.run(["xdotool", "key", "Return"], env=env, timeout=5, check=True)


def xdotool_key(display: str, keys: str, timeout: float = 8.0) -> None:
    """Press ``keys`` (xdotool's names, e.g. ``ctrl+x``) in the xfreerdp window."""
    focus_xfreerdp(display, timeout)
    env = {**os.environ, "DISPLAY": display}
    subprocess.run(["xdotool", "key", keys], env=env, timeout=5, check=True)


def xdotool_pointer(display: str, x: int, y: int) -> None:
    """Move the pointer to (x, y) on ``display``; xfreerdp passes it on, so the target's
    keyboard focus (no window manager: the window under the pointer) follows."""
    env = {**os.environ, "DISPLAY": display}
    subprocess.run(["xdotool", "mousemove", str(x), str(y)], env=env, timeout=5, check=True)


def focus_xfreerdp(display: str, timeout: float) -> str:
    """The xfreerdp window on ``display``, focused (no window manager there, so it is
    focused explicitly)."""
    env = {**os.environ, "DISPLAY": display}
    deadline = time.monotonic() + timeout
    while True:
        found = subprocess.run(
            ["xdotool", "search", "--class", "xfreerdp"],
            capture_output=True,
            text=True,
            env=env,
            timeout=5,
            check=False,
        )
        windows = found.stdout.split()
        if windows:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"no xfreerdp window on {display} after {timeout} s")
        time.sleep(0.2)
    window = windows[-1]
    subprocess.run(["xdotool", "windowfocus", "--sync", window], env=env, timeout=5, check=True)
    return window


# -- target users --------------------------------------------------------------------------

#: The xrdp session: a navy xterm at the top left, so a pixel at (100, 100) tells us the
#: user's own desktop came up (not xrdp's grey login dialog).
XSESSION = (
    'exec xterm -geometry 80x24+10+10 -bg navy -fg white -e "echo LOGGED_IN_AS_$USER; sleep 3600"\n'
)


def ensure_unix_user(name: str, password: str) -> Path:
    """Create ``name`` if missing (CI runs as root on a fresh machine), set its password,
    and give it the navy-xterm ``.xsession``; returns its home."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], check=True, timeout=30)
    subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True, timeout=30)
    entry = pwd.getpwnam(name)
    home = Path(entry.pw_dir)
    home.mkdir(parents=True, exist_ok=True)
    xsession = home / ".xsession"
    xsession.write_text(XSESSION)
    xsession.chmod(0o755)
    os.chown(home, entry.pw_uid, entry.pw_gid)
    os.chown(xsession, entry.pw_uid, entry.pw_gid)
    return home


# -- xrdp + xrdp-sesman (non-NLA target, notes §4.2) -------------------------------------


@dataclass
class XrdpTarget:
    """xrdp on 127.0.0.1:``port`` with its own sesman; logs in ``workdir``."""

    port: int
    workdir: Path
    sesman: Process
    xrdp: Process
    username: str = XRDP_USER[0]
    password: str = XRDP_USER[1]

    @property
    def sesman_log(self) -> Path:
        return self.workdir / "xrdp-sesman.log"

    @property
    def xrdp_log(self) -> Path:
        return self.workdir / "xrdp.log"

    def add_user(self, name: str, password: str) -> None:
        """Another login with the navy-xterm session (a fresh user gets a fresh session:
        xrdp reconnects a user's second login to the first session)."""
        ensure_unix_user(name, password)

    def stop(self) -> None:
        self.xrdp.stop()
        self.sesman.stop()


def _ini(source: Path, target: Path, changes: dict[tuple[str, str], str]) -> None:
    """Copy an xrdp ini, replacing ``key=`` lines of the given sections."""
    section, out = "", []
    for line in source.read_text().splitlines():
        header = re.match(r"\[(.+)\]\s*$", line)
        if header:
            section = header.group(1)
        key = line.split("=", 1)[0].strip() if "=" in line and not line.startswith(";") else ""
        out.append(f"{key}={changes[(section, key)]}" if (section, key) in changes else line)
    target.write_text("\n".join(out) + "\n")


def start_xrdp(workdir: Path, port: int = XRDP_PORT) -> XrdpTarget:
    """Start xrdp-sesman and xrdp with ini files in ``workdir`` (the system ones copied,
    port and logs changed), each in its own process group; creates the test user."""
    require_free_port(SESMAN_PORT, "xrdp-sesman")
    require_free_port(port, "xrdp")
    ensure_unix_user(*XRDP_USER)
    logging = {("Logging", "EnableSyslog"): "false", ("Logging", "LogLevel"): "DEBUG"}
    _ini(
        Path("/etc/xrdp/sesman.ini"),
        workdir / "sesman.ini",
        {**logging, ("Logging", "LogFile"): str(workdir / "xrdp-sesman.log")},
    )
    _ini(
        Path("/etc/xrdp/xrdp.ini"),
        workdir / "xrdp.ini",
        {
            **logging,
            ("Logging", "LogFile"): str(workdir / "xrdp.log"),
            ("Globals", "port"): f"tcp://127.0.0.1:{port}",
        },
    )
    sesman = start_process(
        "xrdp-sesman",
        ["xrdp-sesman", "--nodaemon", "-c", str(workdir / "sesman.ini")],
        workdir / "sesman.out",
    )
    try:
        wait_for_port(SESMAN_PORT, sesman, hosts=("::1", "127.0.0.1"))  # 0.9.21 binds ::1
        xrdp = start_process(
            "xrdp", ["xrdp", "--nodaemon", "-c", str(workdir / "xrdp.ini")], workdir / "xrdp.out"
        )
        try:
            wait_for_port(port, xrdp)
        except PeerError:
            xrdp.stop()
            raise
    except PeerError:
        sesman.stop()
        raise
    return XrdpTarget(port, workdir, sesman, xrdp)


# -- freerdp-shadow-cli (NLA target, notes §4.3) -----------------------------------------

SHADOW_MARKER = (
    "xterm -geometry 60x10+20+20 -bg darkgreen -fg white "
    "-e 'echo SHADOW_TARGET_DESKTOP; sleep 3600'"
)


@dataclass
class ShadowTarget:
    """freerdp-shadow-cli on 127.0.0.1:``port`` requiring NLA, sharing its own Xvfb
    (``display``) with a dark-green marker xterm; ``log`` is the server's output."""

    port: int
    display: str
    workdir: Path
    xvfb: Xvfb
    marker: Process
    server: Process
    username: str = SHADOW_USER[0]
    password: str = SHADOW_USER[1]

    @property
    def log(self) -> Path:
        return self.server.log

    def stop(self) -> None:
        self.server.stop()
        self.marker.stop()
        self.xvfb.stop()


def start_shadow(
    workdir: Path, port: int = SHADOW_PORT, display: str = SHADOW_DISPLAY
) -> ShadowTarget:
    require_free_port(port, "freerdp-shadow-cli")
    sam = workdir / "shadow.sam"
    hashed = subprocess.run(
        ["winpr-hash", "-u", SHADOW_USER[0], "-p", SHADOW_USER[1], "-f", "sam"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    sam.write_text(hashed)
    xvfb = start_xvfb(display, "800x600x24", workdir)
    started: list[Process] = []
    try:
        started.append(
            start_process(
                "marker xterm",
                ["sh", "-c", f"exec {SHADOW_MARKER}"],
                workdir / "marker.log",
                {"DISPLAY": display},
            )
        )
        server = start_process(
            "freerdp-shadow-cli",
            [
                "freerdp-shadow-cli",
                "/bind-address:127.0.0.1",
                f"/port:{port}",
                "/sec:nla",
                f"/sam-file:{sam}",
            ],
            workdir / "shadow.log",
            {"DISPLAY": display},
        )
        started.append(server)
        wait_for_port(port, server)
    except BaseException:
        for process in started:
            process.stop()
        xvfb.stop()
        raise
    return ShadowTarget(port, display, workdir, xvfb, started[0], server)
