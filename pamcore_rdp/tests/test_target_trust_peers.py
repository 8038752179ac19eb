"""Certificate pinning against the real targets (issue 11, item 1): the first connection to
xrdp (TLS) and to freerdp-shadow-cli (NLA) pins the certificate; the same peer restarted
with another certificate is refused and audited before any credential leaves; clearing the
pin lets the next connection pin the new one.

Each test starts its own instance of the peer on a free port (xrdp beside the session's
xrdp-sesman, which the ``xrdp_target`` fixture runs; freerdp-shadow on the shadow fixture's
display), so the shared peers keep their certificates.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from pamcore_rdp.proxy.trust import certificate_sha256
from peers import Process, start_process, wait_for_port
from rdp_targets import ShadowTarget, XrdpTarget, _ini
from relay_standin import Proxy, lab_session, make_instance
from trust_lab import audited, drive_client, pinned, setting

from pamcore.core import Pamcore


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rsa_pair(cert: Path, key: Path) -> str:
    """A self-signed RSA certificate (FreeRDP 2 servers load RSA keys only); its SHA-256."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cert.stem)])
    now = dt.datetime.now(dt.UTC)  # certificate validity is wall-clock by nature
    built = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(private, hashes.SHA256())
    )
    cert.parent.mkdir(parents=True, exist_ok=True)
    cert.write_bytes(built.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    key.chmod(0o600)
    return certificate_sha256(built.public_bytes(serialization.Encoding.DER))


@pytest.fixture
def core(tmp_path: Path) -> Iterator[Pamcore]:
    core = make_instance(tmp_path)
    yield core
    core.dispose()


def start_xrdp_with(workdir: Path, port: int, name: str) -> tuple[Process, str]:
    """xrdp alone (the fixture's sesman serves it) with a certificate of its own."""
    cert, key = workdir / f"{name}.crt", workdir / f"{name}.key"
    sha256 = rsa_pair(cert, key)
    ini = workdir / f"{name}.ini"
    _ini(
        Path("/etc/xrdp/xrdp.ini"),
        ini,
        {
            ("Logging", "EnableSyslog"): "false",
            ("Logging", "LogFile"): str(workdir / f"{name}.log"),
            ("Globals", "port"): f"tcp://127.0.0.1:{port}",
            ("Globals", "certificate"): str(cert),
            ("Globals", "key_file"): str(key),
        },
    )
    xrdp = start_process("xrdp", ["xrdp", "--nodaemon", "-c", str(ini)], workdir / f"{name}.out")
    wait_for_port(port, xrdp)
    return xrdp, sha256


def start_shadow_with(
    workdir: Path, port: int, shadow: ShadowTarget, name: str
) -> tuple[Process, str]:
    """freerdp-shadow-cli (NLA, the fixture's users and display) with its certificate
    from ``$XDG_CONFIG_HOME``."""
    config = workdir / name
    # FreeRDP 2's shadow server keeps (or makes) freerdp/shadow/shadow.{crt,key} there.
    shadow_dir = config / "freerdp" / "shadow"
    sha256 = rsa_pair(shadow_dir / "shadow.crt", shadow_dir / "shadow.key")
    sam = shadow.workdir / "shadow.sam"
    display = shadow.display
    process = start_process(
        "freerdp-shadow-cli",
        [
            "freerdp-shadow-cli",
            "/bind-address:127.0.0.1",
            f"/port:{port}",
            "/sec:nla",
            f"/sam-file:{sam}",
        ],
        workdir / f"{name}.log",
        {"DISPLAY": display, "XDG_CONFIG_HOME": str(config), "HOME": str(config)},
    )
    wait_for_port(port, process)
    return process, sha256


def pin_then_change(
    core: Pamcore, proxy: Proxy, start: Callable[[str], tuple[Process, str]]
) -> None:
    """First connection pins; a restart with another certificate is refused and audited;
    clearing the pin (what the CLI and the admin page do) lets the next one pin again."""
    peer, first = start("first")
    try:
        drive_client(proxy.port)
        reason = proxy.finished.get(timeout=30).reason
        assert pinned(core) == first, reason
        assert [e.details["sha256"] for e in audited(core, "resource.certificate_pinned")] == [
            first
        ]
    finally:
        peer.stop()
    peer, second = start("second")
    try:
        assert second != first
        drive_client(proxy.port)
        reason = proxy.finished.get(timeout=30).reason
        assert "changed" in reason and second in reason, reason
        (refused,) = audited(core, "connection.certificate_refused")
        assert refused.details["offered"] == second
        assert pinned(core) == first
        setting(core, "certificate_sha256", None)
        drive_client(proxy.port)
        proxy.finished.get(timeout=30)
        assert pinned(core) == second
    finally:
        peer.stop()


def test_xrdp_certificate_pinned_then_changed_is_refused(
    core: Pamcore, xrdp_target: XrdpTarget, tmp_path: Path
) -> None:
    port = free_port()
    admit = lab_session(core, port, xrdp_target.username, xrdp_target.password)
    setting(core, "security", "tls")
    proxy = Proxy(core, admit)
    try:
        pin_then_change(core, proxy, lambda name: start_xrdp_with(tmp_path, port, name))
    finally:
        proxy.close()


def test_shadow_certificate_pinned_then_changed_is_refused_before_credssp(
    core: Pamcore, shadow_target: ShadowTarget, tmp_path: Path
) -> None:
    port = free_port()
    admit = lab_session(core, port, shadow_target.username, shadow_target.password, "ntlm")
    setting(core, "security", "nla")
    proxy = Proxy(core, admit)
    try:
        pin_then_change(
            core,
            proxy,
            lambda name: start_shadow_with(tmp_path, port, shadow_target, name),
        )
    finally:
        proxy.close()
