"""RDP test peers as session-scoped fixtures (docs/design/rdp.md §4.5).

How to use them in an end-to-end test::

    from peers import log_mark, wait_for_log
    from rdp_display import run_xfreerdp, wait_for_pixel
    from rdp_targets import NAVY

    def test_something(xvfb_display, xrdp_target):
        mark = log_mark(xrdp_target.sesman_log)
        rc, output = run_xfreerdp([f"/v:127.0.0.1:{proxy_port}", "/u:alice+Admin+win01",
                                   "/p:...", "/sec:tls"], seconds=12)
        wait_for_log(xrdp_target.sesman_log, "user rdptest", timeout=8, since=mark)
        wait_for_pixel(xvfb_display, 100, 100, NAVY)

The peers run once per test session and are shared by every test, so: take a
``log_mark`` before acting and wait only for lines after it; finish every client you start
(``run_xfreerdp`` does); use ``xrdp_target.add_user`` for a login that must not reconnect
to an earlier session. Ports and X displays are free ones picked at start; xrdp-sesman's
port is fixed, so a second pytest run on the same machine waits for the first to release
the lock (``peers.exclusive_peers``), which also ends the peers of a run that was killed.
``peers`` holds processes, logs, ports and that lock; ``rdp_display`` Xvfb, pixels, xfreerdp
and xdotool; ``rdp_targets`` the users, xrdp and freerdp-shadow.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from peers import DEBIAN_HINT, PeerError, exclusive_peers, missing_binaries
from rdp_display import CLIENT_BINARIES, XVFB_BINARIES, start_xvfb
from rdp_targets import (
    SHADOW_BINARIES,
    XRDP_BINARIES,
    ShadowTarget,
    XrdpTarget,
    start_shadow,
    start_xrdp,
)


def _require(binaries: tuple[str, ...], root: bool = False) -> None:
    """Skip (never fail) when this machine lacks a peer; CI installs them (Makefile)."""
    missing = missing_binaries(binaries)
    if missing:
        pytest.skip(f"missing {', '.join(missing)}: {DEBIAN_HINT}")
    if root and os.geteuid() != 0:
        pytest.skip("needs root (xrdp-sesman starts sessions; the test user is created)")


@pytest.fixture(scope="session")
def _rdp_peers_lock() -> Iterator[None]:
    """The machine-wide lock on the peers (xrdp-sesman's port 3350 is fixed)."""
    try:
        with exclusive_peers():
            yield
    except PeerError as error:
        pytest.fail(str(error))


@pytest.fixture(scope="session")
def xvfb_display(_rdp_peers_lock: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The client's X display (a free one, 1280x800): run xfreerdp on it
    (``rdp_display.run_xfreerdp`` does) and read pixels with
    ``rdp_display.screenshot_pixel(xvfb_display, x, y)``."""
    _require(XVFB_BINARIES + CLIENT_BINARIES)
    try:
        xvfb = start_xvfb("1280x800x24", tmp_path_factory.mktemp("xvfb"))
    except PeerError as error:
        pytest.fail(str(error))
    yield xvfb.display
    xvfb.stop()


@pytest.fixture(scope="session")
def xrdp_target(
    _rdp_peers_lock: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[XrdpTarget]:
    """xrdp 0.9 on 127.0.0.1:``.port`` (a free port), no NLA (answers SSL), user
    ``rdptest``/``Secr3t-Pw1`` (``.username``/``.password``) whose session is a navy xterm
    (pixel ``rdp_targets.NAVY`` at 100,100).

    Oracles: ``.sesman_log`` gets ``Session started successfully for user rdptest`` on a
    first login, ``++ reconnected session: username rdptest`` later, ``AUTHFAIL: user=...``
    on a wrong password; ``.xrdp_log`` (DEBUG) has xrdp's view of the protocol.
    """
    _require(XRDP_BINARIES, root=True)
    try:
        target = start_xrdp(tmp_path_factory.mktemp("xrdp"))
    except PeerError as error:
        pytest.fail(str(error))
    yield target
    target.stop()


@pytest.fixture(scope="session")
def shadow_target(
    _rdp_peers_lock: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ShadowTarget]:
    """freerdp-shadow-cli on 127.0.0.1:``.port`` (a free port) requiring NLA (CredSSP with
    raw NTLM inside, so ``rdp.nla_mechanism=ntlm``), user ``shadowuser``/``Shad0w-Pw1`` from a
    SAM file.

    It shares its own Xvfb (``.display``, a free one) whose dark-green marker xterm shows as
    pixel ``rdp_targets.GREEN`` at (100, 100) in the client once connected. ``.log`` is the
    server's output (binary noise: ``peers.wait_for_log`` decodes leniently); a wrong password logs
    ``client authentication failure``.
    """
    _require(SHADOW_BINARIES)
    try:
        target = start_shadow(tmp_path_factory.mktemp("shadow"))
    except PeerError as error:
        pytest.fail(str(error))
    yield target
    target.stop()
