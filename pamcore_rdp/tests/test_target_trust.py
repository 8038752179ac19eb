"""The target leg trusts only the target it should (issue 11, item 1): a target that
selects a protocol pamcore did not request, or presents a certificate other than the
pinned one (or one the operator's CA did not issue), is refused and audited before any
credential leaves.

A fake target on loopback plays the machine in the middle: it answers the relay's X.224
Connection Request with the protocol it is told to select, speaks TLS with a certificate
made here, and keeps every plaintext byte it receives; a scripted client drives the relay
stand-in up to the Client Info PDU (the frames xfreerdp sent, :mod:`rdp_frames`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pamcore_rdp.pdu.x224 import (
    PROTOCOL_HYBRID,
    PROTOCOL_SSL,
    encode_connection_confirm,
)
from pamcore_rdp.proxy.trust import CertificateTrust, certificate_refusal, certificate_sha256
from pamcore_rdp.settings import parse_sha256
from relay_standin import RESOURCE, Proxy, lab_session, make_instance
from sqlalchemy import select
from trust_lab import audited, drive_client, pinned, setting

from pamcore.core import Pamcore
from pamcore.model import Resource

#: The vaulted account and password the fake target must never see unless trusted.
ACCOUNT, VAULTED = "Administrator", "Vaulted-Pw-9f3!"


# -- certificates ------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path
    der: bytes

    @property
    def sha256(self) -> str:
        return certificate_sha256(self.der)


def make_pair(
    folder: Path,
    name: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
) -> tuple[Pair, x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate for 127.0.0.1: self-signed, or issued by ``issuer`` (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)  # certificate validity is wall-clock by nature
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Pair(cert_path, key_path, cert.public_bytes(serialization.Encoding.DER)), cert, key


# -- the fake target and the scripted client ----------------------------------------------


@dataclass
class FakeTarget:
    """Accepts connections, selects ``selected``, speaks TLS with ``pair`` and keeps what
    it receives (per connection, in ``received``)."""

    pair: Pair
    selected: int
    received: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(self.pair.cert, self.pair.key)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                data = bytearray()
                self.received.append(b"")
                try:
                    conn.recv(4096)  # the X.224 Connection Request
                    conn.sendall(encode_connection_confirm(self.selected))
                    with self.tls.wrap_socket(conn, server_side=True) as tls:
                        while chunk := tls.recv(65536):
                            data += chunk
                            self.received[-1] = bytes(data)
                except (OSError, ssl.SSLError):
                    pass

    def got(self, connection: int = -1) -> bytes:
        return self.received[connection] if self.received else b""

    def close(self) -> None:
        self.server.close()
        self.thread.join(5)


@pytest.fixture
def core(tmp_path: Path) -> Iterator[Pamcore]:
    core = make_instance(tmp_path)
    yield core
    core.dispose()


def connect_once(core: Pamcore, target: FakeTarget, proxy: Proxy) -> str:
    drive_client(proxy.port)
    return proxy.finished.get(timeout=30).reason


def secret_sent(data: bytes) -> bool:
    return VAULTED.encode("utf-16-le") in data or VAULTED.encode() in data


# -- the fake target -----------------------------------------------------------------------


def test_nla_downgraded_to_tls_is_refused_before_the_password(
    core: Pamcore, tmp_path: Path
) -> None:
    """The reproduction: rdp.security=nla asks for NLA only (0x0a); a machine in the middle
    selects TLS (0x1) with a self-signed certificate and waits for the Client Info PDU."""
    pair, _, _ = make_pair(tmp_path, "mitm")
    target = FakeTarget(pair, PROTOCOL_SSL)
    admit = lab_session(core, target.port, ACCOUNT, VAULTED)
    setting(core, "security", "nla")
    proxy = Proxy(core, admit)
    try:
        reason = connect_once(core, target, proxy)
    finally:
        proxy.close()
        target.close()
    assert not secret_sent(target.got()), "the vaulted password reached the fake target"
    assert ACCOUNT.encode("utf-16-le") not in target.got()
    assert "did not request" in reason
    (event,) = audited(core, "connection.protocol_refused")
    assert event.details["selected"] == PROTOCOL_SSL
    assert event.details["requested"] == 0x0A
    assert event.target == RESOURCE
    assert pinned(core) is None


def test_selected_protocol_not_requested_is_refused_for_tls_too(
    core: Pamcore, tmp_path: Path
) -> None:
    """rdp.security=tls requests TLS only; a target that selects NLA is refused as well
    (MS-RDPBCGR 2.2.1.2.1), before CredSSP sends anything."""
    pair, _, _ = make_pair(tmp_path, "odd")
    target = FakeTarget(pair, PROTOCOL_HYBRID)
    admit = lab_session(core, target.port, ACCOUNT, VAULTED)
    setting(core, "security", "tls")
    proxy = Proxy(core, admit)
    try:
        reason = connect_once(core, target, proxy)
    finally:
        proxy.close()
        target.close()
    assert target.got() == b""
    assert "did not request" in reason
    assert len(audited(core, "connection.protocol_refused")) == 1


def test_certificate_pinned_on_first_use_and_a_changed_one_refused(
    core: Pamcore, tmp_path: Path
) -> None:
    first, _, _ = make_pair(tmp_path, "first")
    second, _, _ = make_pair(tmp_path, "second")
    target = FakeTarget(first, PROTOCOL_SSL)
    admit = lab_session(core, target.port, ACCOUNT, VAULTED)
    setting(core, "security", "tls")
    proxy = Proxy(core, admit)
    try:
        connect_once(core, target, proxy)
        assert secret_sent(target.got()), "the trusted target should get the credential"
        assert pinned(core) == first.sha256
        (pin,) = audited(core, "resource.certificate_pinned")
        assert pin.details["sha256"] == first.sha256

        # The same address now answers with another certificate: a machine in the middle.
        target.close()
        target = FakeTarget(second, PROTOCOL_SSL)
        with core.unit() as db:
            resource = db.scalars(select(Resource).where(Resource.name == RESOURCE)).one()
            resource.protocols[0].port = target.port
        reason = connect_once(core, target, proxy)
        assert not secret_sent(target.got())
        assert ACCOUNT.encode("utf-16-le") not in target.got()
        assert "changed" in reason and second.sha256 in reason
        assert f"set-setting {RESOURCE} rdp.certificate_sha256 {second.sha256}" in reason
        (refused,) = audited(core, "connection.certificate_refused")
        assert refused.details["offered"] == second.sha256
        assert pinned(core) == first.sha256

        # An administrator checked the change and clears the pin: the next use pins again.
        setting(core, "certificate_sha256", None)
        connect_once(core, target, proxy)
        assert secret_sent(target.got())
        assert pinned(core) == second.sha256
    finally:
        proxy.close()
        target.close()


def test_no_pin_and_no_trust_on_first_use_is_refused(core: Pamcore, tmp_path: Path) -> None:
    pair, _, _ = make_pair(tmp_path, "unknown")
    target = FakeTarget(pair, PROTOCOL_SSL)
    admit = lab_session(core, target.port, ACCOUNT, VAULTED)
    setting(core, "security", "tls")
    with core.unit() as db:
        db.scalars(
            select(Resource).where(Resource.name == RESOURCE)
        ).one().trust_on_first_use = False
    proxy = Proxy(core, admit)
    try:
        reason = connect_once(core, target, proxy)
        assert not secret_sent(target.got())
        assert "does not trust on first use" in reason and pair.sha256 in reason
        # The administrator pins what they checked on the target: accepted from then on.
        setting(core, "certificate_sha256", pair.sha256.replace(":", "").lower())
        connect_once(core, target, proxy)
        assert secret_sent(target.got())
    finally:
        proxy.close()
        target.close()


def test_ca_bundle_checks_the_issuer_and_the_address(core: Pamcore, tmp_path: Path) -> None:
    ca_pair, ca_cert, ca_key = make_pair(tmp_path, "ca")
    issued, _, _ = make_pair(tmp_path, "issued", (ca_cert, ca_key))
    stranger, _, _ = make_pair(tmp_path, "stranger")
    target = FakeTarget(stranger, PROTOCOL_SSL)
    admit = lab_session(core, target.port, ACCOUNT, VAULTED)
    setting(core, "security", "tls")
    setting(core, "ca_bundle", str(ca_pair.cert))
    proxy = Proxy(core, admit)
    try:
        reason = connect_once(core, target, proxy)
        assert not secret_sent(target.got())
        assert "not trusted by rdp.ca_bundle" in reason
        target.close()
        target = FakeTarget(issued, PROTOCOL_SSL)
        with core.unit() as db:
            resource = db.scalars(select(Resource).where(Resource.name == RESOURCE)).one()
            resource.protocols[0].port = target.port
        connect_once(core, target, proxy)
        assert secret_sent(target.got())
        assert pinned(core) is None  # the CA is the anchor: nothing to pin
        setting(core, "ca_bundle", str(tmp_path / "missing.pem"))
        reason = connect_once(core, target, proxy)
        assert "cannot be loaded" in reason
        assert len(audited(core, "connection.certificate_refused")) == 2
    finally:
        proxy.close()
        target.close()


# -- the rules -----------------------------------------------------------------------------


def test_certificate_refusal_rules() -> None:
    a, b = "AA:" * 31 + "AA", "BB:" * 31 + "BB"
    pin = CertificateTrust(pinned=a, ca_bundle="", trust_on_first_use=True)
    assert certificate_refusal("w", pin, a) is None
    assert "changed" in (certificate_refusal("w", pin, b) or "")
    first_use = CertificateTrust(pinned="", ca_bundle="", trust_on_first_use=True)
    assert certificate_refusal("w", first_use, b) is None
    closed = CertificateTrust(pinned="", ca_bundle="", trust_on_first_use=False)
    assert "does not trust on first use" in (certificate_refusal("w", closed, b) or "")


def test_parse_sha256_accepts_common_spellings() -> None:
    digits = "ab" * 32
    expected = ":".join(["AB"] * 32)
    assert parse_sha256(digits) == expected
    assert parse_sha256("sha256:" + ":".join(["ab"] * 32)) == expected
    assert parse_sha256("  ") == ""
    with pytest.raises(ValueError, match="64 hex digits"):
        parse_sha256("ab" * 31)
