"""Phase B end to end with real peers: xfreerdp (under Xvfb) -> a listener stand-in that
relays every connection admitted into one lab_session -> xrdp (TLS, Client Info injection) or
freerdp-shadow-cli (CredSSP). The stand-in does what the listener does around a relay
(admit, run, audit the close); the redirect token redemption in front of it is the listener's.

Oracles: the target's log and a screenshot pixel of the user's desktop
(docs/design/rdp.md §4.5); for a failure, the front's status card in the client's window
and the audit log; no vaulted or user password in the logs, the recording or the target
logs we can read.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from pamcore_rdp.pdu.prompt import BACKGROUND
from pamcore_rdp.proxy.recording import FORMAT
from pamcore_rdp.proxy.relay import Relay, Timeouts
from peers import log_mark, wait_for_log
from rdp_display import TIMED_OUT, XfreerdpRun, start_xfreerdp, wait_for_pixel
from rdp_targets import GREEN, NAVY, ShadowTarget, XrdpTarget, xrdp_logged_in
from relay_standin import ALICE_PASSWORD, RESOURCE, STEPS, Proxy, lab_session, make_instance
from sqlalchemy import select

from pamcore.core import Pamcore
from pamcore.metrics import PROCESS
from pamcore.model import AuditEvent, Recording
from pamcore.testing.contract import closed_port


@pytest.fixture
def core(tmp_path: Path) -> Iterator[Pamcore]:
    core = make_instance(tmp_path)
    yield core
    core.dispose()


def client_args(proxy: Proxy) -> list[str]:
    return proxy.client_args()


@contextlib.contextmanager
def on_shadow_desktop(
    core: Pamcore, shadow: ShadowTarget, display: str, timeouts: Timeouts = STEPS
) -> Iterator[tuple[Proxy, XfreerdpRun, Relay]]:
    """xfreerdp through the relay on the shadow target's desktop (its green marker shows)."""
    admit = lab_session(core, shadow.port, shadow.username, shadow.password, "ntlm")
    proxy = Proxy(core, admit, timeouts)
    client = start_xfreerdp(proxy.client_args(), display)
    try:
        wait_for_pixel(display, 100, 100, GREEN, timeout=15)
        yield proxy, client, proxy.live.get(timeout=1)
    finally:
        client.finish()
        proxy.close()


def closes_audited(core: Pamcore) -> list[str]:
    with core.reader() as db:
        events = db.scalars(select(AuditEvent).where(AuditEvent.action == "connection.closed"))
        return [str(event.details.get("reason")) for event in events]


def assert_secret_free(secrets: list[str], *texts: bytes) -> None:
    """None of ``secrets`` in ``texts``, as UTF-8 or as the UTF-16LE of a Client Info."""
    for secret in secrets:
        for text in texts:
            assert secret.encode() not in text
            assert secret.encode("utf-16-le") not in text


def recording_of(core: Pamcore) -> tuple[Path, list[object], str]:
    """The one registered recording: its file, its lines, the SHA-256 audited for it."""
    with core.reader() as db:
        recording = db.scalars(select(Recording)).one()
        saved = db.scalars(select(AuditEvent).where(AuditEvent.action == "recording.saved")).one()
        path, audited = Path(recording.path), str(saved.details["sha256"])
        assert recording.format == FORMAT
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return path, lines, audited


def frames(lines: list[object]) -> bytes:
    """Every recorded frame, decoded."""
    return b"".join(
        base64.b64decode(line[2])
        for line in lines
        if isinstance(line, list) and line[2] is not None
    )


def relayed(direction: str) -> float:
    """This process's ``pamcore_relayed_bytes_total`` for RDP in one direction."""
    labels = {"protocol": "rdp", "direction": direction}
    return PROCESS.get_sample_value("pamcore_relayed_bytes_total", labels) or 0.0


def test_xrdp_logs_in_with_the_injected_password_and_the_session_is_recorded(
    core: Pamcore,
    xvfb_display: str,
    xrdp_target: XrdpTarget,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    admit = lab_session(core, xrdp_target.port, xrdp_target.username, xrdp_target.password)
    proxy = Proxy(core, admit)
    before = {direction: relayed(direction) for direction in ("to_client", "to_target")}
    mark = log_mark(xrdp_target.sesman_log)
    client = start_xfreerdp(proxy.client_args(), xvfb_display)
    try:
        wait_for_log(xrdp_target.sesman_log, xrdp_logged_in(xrdp_target.username), 15, mark)
        wait_for_pixel(xvfb_display, 100, 100, NAVY, timeout=15)
        relay = proxy.live.get(timeout=1)
        assert relay.established.is_set() and relay.selected_protocol == 1  # TLS
    finally:
        rc, output = client.finish()
        finished = proxy.finished.get(timeout=10)
        proxy.close()
    assert rc == TIMED_OUT, output  # the session was up until we ended the client
    assert finished.reason == "the client closed the connection"
    assert closes_audited(core) == ["the client closed the connection"]

    path, lines, audited = recording_of(core)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == audited
    header, last = lines[0], lines[-1]
    assert isinstance(header, dict) and header["user"] == "alice"
    assert header["resource"] == RESOURCE and header["login"] == xrdp_target.username
    assert isinstance(last, dict) and last["bytes"]["server"] > 1000
    # /metrics counts what the relay counted, both ways (issue 13).
    assert relayed("to_client") - before["to_client"] == relay.bytes["server"] > 1000
    assert relayed("to_target") - before["to_target"] == relay.bytes["client"] > 0
    directions = {line[1] for line in lines if isinstance(line, list)}
    assert directions == {"c", "s"}
    # The Client Info went out with the account, and into the file without the password.
    assert xrdp_target.username.encode("utf-16-le") in frames(lines)
    secrets = [xrdp_target.password, ALICE_PASSWORD]
    logs = "\n".join(record.getMessage() for record in caplog.records).encode()
    assert_secret_free(secrets, path.read_bytes(), frames(lines), logs)
    assert_secret_free(
        secrets, xrdp_target.xrdp_log.read_bytes(), xrdp_target.sesman_log.read_bytes()
    )


def test_shadow_target_gets_the_vaulted_password_by_credssp(
    core: Pamcore,
    xvfb_display: str,
    shadow_target: ShadowTarget,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with on_shadow_desktop(core, shadow_target, xvfb_display) as (proxy, client, relay):
        assert relay.selected_protocol == 2  # HYBRID: CredSSP with the vaulted password
        rc, output = client.finish()
        proxy.finished.get(timeout=10)
    assert rc == TIMED_OUT, output
    path, lines, _ = recording_of(core)
    logs = "\n".join(record.getMessage() for record in caplog.records).encode()
    secrets = [shadow_target.password, ALICE_PASSWORD]
    assert_secret_free(secrets, path.read_bytes(), frames(lines), logs)
    assert_secret_free(secrets, shadow_target.log.read_bytes())


def test_wrong_vaulted_password_is_a_clear_audited_refusal(
    core: Pamcore, xvfb_display: str, shadow_target: ShadowTarget
) -> None:
    admit = lab_session(core, shadow_target.port, shadow_target.username, "Stale-Vault-Pw", "ntlm")
    proxy = Proxy(core, admit)
    mark = log_mark(shadow_target.log)
    client = start_xfreerdp(proxy.client_args(), xvfb_display)
    try:
        wait_for_pixel(xvfb_display, 5, 5, BACKGROUND, timeout=15)  # the front's card
        rc, output = client.finish(20)
        finished = proxy.finished.get(timeout=5)
    finally:
        client.finish()
        proxy.close()
    assert rc != TIMED_OUT, output  # the client was dropped after the card, no hang
    who = f"{shadow_target.username}@{RESOURCE}"
    expected = f"the vaulted password for {who} was refused by the target (CredSSP)"
    assert finished.reason == expected
    assert expected in closes_audited(core)
    wait_for_log(shadow_target.log, "authentication fail", timeout=5, since=mark)


def test_unreachable_target_is_a_clear_audited_refusal(core: Pamcore, xvfb_display: str) -> None:
    port = closed_port()
    admit = lab_session(core, port, "nobody", "Irrelevant-Pw-1")
    proxy = Proxy(core, admit)
    client = start_xfreerdp(proxy.client_args(), xvfb_display)
    try:
        wait_for_pixel(xvfb_display, 5, 5, BACKGROUND, timeout=15)  # the front's card
        rc, output = client.finish(20)
        finished = proxy.finished.get(timeout=5)
    finally:
        client.finish()
        proxy.close()
    assert rc != TIMED_OUT, output
    assert finished.reason.startswith(f"target {RESOURCE} (127.0.0.1:{port}) is unreachable: ")
    assert finished.reason in closes_audited(core)


def test_a_silent_target_is_a_clear_refusal_not_a_hang(core: Pamcore, xvfb_display: str) -> None:
    """A port that accepts (its backlog) but never answers the X.224 request."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        admit = lab_session(core, port, "nobody", "Irrelevant-Pw-1")
        proxy = Proxy(core, admit, Timeouts(step=1))
        client = start_xfreerdp(proxy.client_args(), xvfb_display)
        try:
            finished = proxy.finished.get(timeout=25)  # the step, then the status card
            rc, output = client.finish(10)
        finally:
            client.finish()
            proxy.close()
    where = f"{RESOURCE} (127.0.0.1:{port})"
    assert finished.reason == f"target {where} did not answer the RDP connection request"
    assert rc != TIMED_OUT, output
    assert finished.reason in closes_audited(core)


def test_closing_the_relay_ends_the_client_session(
    core: Pamcore, xvfb_display: str, shadow_target: ShadowTarget
) -> None:
    """What the listener does at the session's end time or when the session ends."""
    with on_shadow_desktop(core, shadow_target, xvfb_display) as (proxy, client, relay):
        proxy.loop.loop.call_soon_threadsafe(relay.close, "session end time reached")
        finished = proxy.finished.get(timeout=5)
        rc, output = client.finish(10)
    assert finished.reason == "session end time reached"
    assert rc != TIMED_OUT, output  # xfreerdp left by itself once the proxy closed
    assert "session end time reached" in closes_audited(core)


def test_an_idle_connection_is_closed(
    core: Pamcore, xvfb_display: str, shadow_target: ShadowTarget
) -> None:
    """The shadow desktop is static and xfreerdp sends nothing without input."""
    idle = Timeouts(step=8, idle=3)
    with on_shadow_desktop(core, shadow_target, xvfb_display, idle) as (proxy, client, _):
        finished = proxy.finished.get(timeout=15)
        rc, output = client.finish(10)
    assert finished.reason == "idle for 3 s"
    assert rc != TIMED_OUT, output
