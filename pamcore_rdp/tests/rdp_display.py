"""The X display side of the RDP test peers (docs/design/rdp.md §4.4): Xvfb, screenshots and pixel
checks, the xfreerdp client and xdotool driving its window."""

from __future__ import annotations

import contextlib
import io
import os
import select
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from peers import PEER_ENV, PeerError, Process, start_process
from PIL import Image

#: Binaries per peer, so a fixture skips naming exactly what is missing.
XVFB_BINARIES = ("Xvfb", "import")
CLIENT_BINARIES = ("xfreerdp",)
#: Per-channel slack in pixel checks: freerdp-shadow's lossy codecs round a colour by a
#: step or two now and then (seen: 0,100,0 for 0,99,0); the colours the tests tell apart
#: differ by far more.
PIXEL_SLACK = 6


# -- Xvfb --------------------------------------------------------------------------------


@dataclass
class Xvfb:
    display: str
    process: Process

    def stop(self) -> None:
        self.process.stop()


def start_xvfb(geometry: str, workdir: Path, timeout: float = 10.0) -> Xvfb:
    """An Xvfb on a display it finds free itself (``-displayfd``: it writes the number it
    took once it accepts clients), so a display that anything else holds is skipped."""
    read, write = os.pipe()
    try:
        process = start_process(
            "Xvfb",
            [
                "Xvfb",
                "-displayfd",
                str(write),
                "-screen",
                "0",
                geometry,
                "-nolisten",
                "tcp",
                "-noreset",
            ],
            workdir / "xvfb.log",
            pass_fds=(write,),
        )
    finally:
        os.close(write)
    try:
        number = read_line(read, timeout)
    finally:
        os.close(read)
    if not number.strip().isdigit():
        process.stop()
        raise PeerError(f"Xvfb named no display within {timeout} s:\n{process.tail()}")
    return Xvfb(f":{int(number)}", process)


def read_line(fd: int, timeout: float) -> bytes:
    """Bytes from ``fd`` up to a newline, end of file or ``timeout`` seconds."""
    line = b""
    deadline = time.monotonic() + timeout
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 16)
        if not chunk:
            break
        line += chunk
    return line


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
#: connected, as timeout(1) does (docs/design/rdp.md §4.4: a working session stays up).
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


def start_xfreerdp(args: Sequence[str], display: str) -> XfreerdpRun:
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
        env={**os.environ, **PEER_ENV, "DISPLAY": display},
        start_new_session=True,
    )
    return XfreerdpRun(process, output)


def run_xfreerdp(args: Sequence[str], seconds: float, display: str) -> tuple[int, str]:
    """Run xfreerdp for at most ``seconds`` and return (rc, output).

    rc is xfreerdp's own exit status, or 124 (:data:`TIMED_OUT`) when the hard timeout
    ended it still connected — the normal outcome of a session that came up. xfreerdp
    rejected by the server exits with 131/147 etc. on its own (docs/design/rdp.md §4.4).
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
