"""The RDP targets of the tests (docs/design/rdp.md §4.2, §4.3): their Unix users,
xrdp + xrdp-sesman without NLA and freerdp-shadow-cli with NLA on its own Xvfb."""

from __future__ import annotations

import os
import pwd
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from peers import PeerError, Process, require_free_port, start_process, wait_for_port
from rdp_display import Xvfb, start_xvfb

from pamcore.testing.sshd import free_port

#: xrdp reads sesman's port from /etc/xrdp/sesman.ini whatever ini it is given, so it is
#: fixed: the machine-wide lock (``peers.exclusive_peers``) keeps it to one run at a time.
SESMAN_PORT = 3350

XRDP_USER = ("rdptest", "Secr3t-Pw1")
SHADOW_USER = ("shadowuser", "Shad0w-Pw1")

#: Pixel colours the notes measured at (100, 100) (§4.4).
NAVY = (0, 0, 128)  # the xrdp session's xterm (.xsession below)
GREEN = (0, 99, 0)  # the shadow target's marker xterm ("darkgreen" renders as 0,99,0)
XRDP_DIALOG_BACKGROUND = (0, 156, 181)  # behind xrdp's own login dialog (no password given)


def xrdp_logged_in(user: str) -> re.Pattern[str]:
    """The sesman log line of a successful login: a new session or a reconnection."""
    name = re.escape(user)
    return re.compile(
        rf"Session started successfully for user {name} |reconnected session: username {name}\b"
    )


#: Binaries per target, so a fixture skips naming exactly what is missing.
XRDP_BINARIES = ("xrdp", "xrdp-sesman", "xterm", "useradd", "chpasswd")
SHADOW_BINARIES = ("freerdp-shadow-cli", "winpr-hash", "xterm", "Xvfb")


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


# -- xrdp + xrdp-sesman (non-NLA target, docs/design/rdp.md §4.2) ----------------------------------


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


def start_xrdp(workdir: Path) -> XrdpTarget:
    """Start xrdp-sesman and xrdp (on a free port) with ini files in ``workdir`` (the
    system ones copied, port and logs changed), each in its own process group; creates the
    test user."""
    require_free_port(SESMAN_PORT, "xrdp-sesman")
    port = free_port()
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


# -- freerdp-shadow-cli (NLA target, docs/design/rdp.md §4.3) --------------------------------------

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


def start_shadow(workdir: Path) -> ShadowTarget:
    """freerdp-shadow-cli on a free port, sharing a new Xvfb with the marker xterm."""
    port = free_port()
    sam = workdir / "shadow.sam"
    hashed = subprocess.run(
        ["winpr-hash", "-u", SHADOW_USER[0], "-p", SHADOW_USER[1], "-f", "sam"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    sam.write_text(hashed)
    xvfb = start_xvfb("800x600x24", workdir)
    display = xvfb.display
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
