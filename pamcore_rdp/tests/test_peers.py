"""Smoke tests of the RDP test peers themselves (no proxy): xfreerdp straight to xrdp and
to freerdp-shadow, with the oracles the proxy tests use (docs/design/rdp.md §4). If these fail, the
proxy's end-to-end failures say nothing about the proxy."""

from __future__ import annotations

from peers import log_mark, wait_for_log
from rdp_display import TIMED_OUT, run_xfreerdp, start_xfreerdp, wait_for_pixel, xdotool_type
from rdp_targets import (
    GREEN,
    NAVY,
    XRDP_DIALOG_BACKGROUND,
    ShadowTarget,
    XrdpTarget,
    xrdp_logged_in,
)


def test_xfreerdp_logs_in_to_xrdp(xvfb_display: str, xrdp_target: XrdpTarget) -> None:
    mark = log_mark(xrdp_target.sesman_log)
    client = start_xfreerdp(
        [
            f"/v:127.0.0.1:{xrdp_target.port}",
            f"/u:{xrdp_target.username}",
            f"/p:{xrdp_target.password}",
            "/size:1024x768",
        ],
        xvfb_display,
    )
    try:
        wait_for_log(
            xrdp_target.sesman_log,
            xrdp_logged_in(xrdp_target.username),
            timeout=15,
            since=mark,
        )
        wait_for_pixel(xvfb_display, 100, 100, NAVY, timeout=15)
    finally:
        rc, output = client.finish()
    assert rc == TIMED_OUT, output  # still connected when we ended it


def test_xdotool_types_a_password_into_xrdps_login_dialog(
    xvfb_display: str, xrdp_target: XrdpTarget
) -> None:
    """The keystroke driver the inline-prompt tests use, against a real in-session form:
    without a password xrdp shows its own login dialog, focused on the password field."""
    mark = log_mark(xrdp_target.sesman_log)
    client = start_xfreerdp(
        [f"/v:127.0.0.1:{xrdp_target.port}", f"/u:{xrdp_target.username}", "/sec:tls"],
        xvfb_display,
    )
    try:
        wait_for_pixel(xvfb_display, 100, 100, XRDP_DIALOG_BACKGROUND, timeout=15)
        xdotool_type(xvfb_display, xrdp_target.password)
        wait_for_log(xrdp_target.sesman_log, xrdp_logged_in(xrdp_target.username), 15, mark)
        wait_for_pixel(xvfb_display, 100, 100, NAVY, timeout=15)
    finally:
        client.finish()


def test_xrdp_refuses_a_wrong_password(xvfb_display: str, xrdp_target: XrdpTarget) -> None:
    mark = log_mark(xrdp_target.sesman_log)
    client = start_xfreerdp(
        [f"/v:127.0.0.1:{xrdp_target.port}", f"/u:{xrdp_target.username}", "/p:wrong"],
        xvfb_display,
    )
    try:
        wait_for_log(
            xrdp_target.sesman_log,
            f"AUTHFAIL: user={xrdp_target.username}",
            timeout=15,
            since=mark,
        )
    finally:
        client.finish()


def test_xfreerdp_logs_in_to_shadow_with_nla(
    xvfb_display: str, shadow_target: ShadowTarget
) -> None:
    client = start_xfreerdp(
        [
            f"/v:127.0.0.1:{shadow_target.port}",
            f"/u:{shadow_target.username}",
            f"/p:{shadow_target.password}",
            "/sec:nla",
            "/size:800x600",
        ],
        xvfb_display,
    )
    try:
        # freerdp-shadow encodes its first frame slowly on a loaded machine
        wait_for_pixel(xvfb_display, 100, 100, GREEN, timeout=25)
    finally:
        rc, output = client.finish()
    assert rc == TIMED_OUT, output


def test_shadow_refuses_a_wrong_password(xvfb_display: str, shadow_target: ShadowTarget) -> None:
    mark = log_mark(shadow_target.log)
    rc, output = run_xfreerdp(
        [
            f"/v:127.0.0.1:{shadow_target.port}",
            f"/u:{shadow_target.username}",
            "/p:wrong",
            "/sec:nla",
            "/auth-only",
        ],
        seconds=15,
        display=xvfb_display,
    )
    assert rc not in (0, TIMED_OUT), output
    wait_for_log(shadow_target.log, "authentication fail", timeout=5, since=mark)
