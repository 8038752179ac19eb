"""The RDP listener's TLS certificate: the operator's own, or one pamcore generates.

An operator names a CA-issued pair in ``pamcore.toml``::

    [plugins.rdp]
    certificate = "/etc/pamcore/rdp.crt"   # PEM, chain allowed; relative to the instance
    key = "/etc/pamcore/rdp.key"           # PEM, unencrypted

Without one, ``pamcore init`` creates a self-signed RSA-2048 certificate for
``public_host`` in the instance folder beside the other keys (an instance initialised
before gets it the first time the listener or the dashboard needs it), as it creates the
SSH proxy's host key. ``pamcore init`` also checks an operator's pair. Users compare the
SHA-256 fingerprint the dashboard shows with their client's prompt (mstsc, FreeRDP).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import ipaddress
import logging
import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pamcore.core import Pamcore
from pamcore.errors import ConfigurationError

log = logging.getLogger(__name__)

PLUGIN = "rdp"
CERT_FILE = "rdp-proxy.crt"
KEY_FILE = "rdp-proxy.key"
#: Self-signed certificates are pinned by people, not checked against a CA's rules; five
#: years spares them a new fingerprint every year.
VALID_DAYS = 5 * 365


@dataclass(frozen=True)
class ProxyCertificate:
    cert_path: Path
    key_path: Path
    #: ``AB:CD:...``: what FreeRDP prints and the dashboard shows.
    sha256: str
    #: The "Thumbprint" Windows' certificate dialog (mstsc) shows by default.
    sha1: str
    subject: str
    not_after: dt.datetime
    #: ``generated`` or ``operator``.
    source: str


def proxy_certificate(core: Pamcore) -> tuple[Path, Path, str]:
    """(certificate path, key path, SHA-256 fingerprint) of the listener's certificate."""
    found = certificate_info(core)
    return found.cert_path, found.key_path, found.sha256


def proxy_tls_context(core: Pamcore) -> ssl.SSLContext:
    """The client leg's server-side TLS context (TLS 1.2 or later, as xrdp and Windows)."""
    found = certificate_info(core)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(found.cert_path, found.key_path)
    return context


def certificate_info(core: Pamcore) -> ProxyCertificate:
    """The operator's pair when configured (checked: readable, matching), else the
    generated one, created if missing (at ``pamcore init``, or first use)."""
    settings = core.config.plugin_settings.get(PLUGIN, {})
    instance = core.config.instance_path
    if "certificate" in settings or "key" in settings:
        if not settings.get("certificate") or not settings.get("key"):
            raise ConfigurationError(
                "[plugins.rdp] needs both 'certificate' and 'key' (PEM files), or neither "
                "for a generated self-signed certificate"
            )
        cert_path = instance / str(settings["certificate"])
        key_path = instance / str(settings["key"])
        return _load(cert_path, key_path, "operator")
    cert_path, key_path = instance / CERT_FILE, instance / KEY_FILE
    with _lock(instance):
        if not (cert_path.exists() and key_path.exists()):
            _generate(cert_path, key_path, core.config.public_host)
            created = _load(cert_path, key_path, "generated")
            log.info("rdp proxy certificate created: SHA-256 %s", created.sha256)
            return created
    return _load(cert_path, key_path, "generated")


def _load(cert_path: Path, key_path: Path, source: str) -> ProxyCertificate:
    """Read and cross-check the pair; a ConfigurationError names the file and the fix."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read the RDP certificate {cert_path}: {exc.strerror}"
        ) from None
    except ValueError:
        raise ConfigurationError(
            f"{cert_path} is not a PEM certificate ('-----BEGIN CERTIFICATE-----')"
        ) from None
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except OSError as exc:
        raise ConfigurationError(f"cannot read the RDP key {key_path}: {exc.strerror}") from None
    except (ValueError, TypeError):
        raise ConfigurationError(
            f"{key_path} is not an unencrypted PEM private key (decrypt it with openssl first)"
        ) from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(
        serialization.Encoding.DER, spki
    ) != cert.public_key().public_bytes(serialization.Encoding.DER, spki):
        raise ConfigurationError(f"{key_path} is not the private key of {cert_path}")
    return ProxyCertificate(
        cert_path=cert_path,
        key_path=key_path,
        sha256=_colons(cert.fingerprint(hashes.SHA256())),
        sha1=_colons(cert.fingerprint(hashes.SHA1())),  # noqa: S303 -- a display thumbprint
        subject=cert.subject.rfc4514_string(),
        not_after=cert.not_valid_after_utc,
        source=source,
    )


def _colons(digest: bytes) -> str:
    return ":".join(f"{b:02X}" for b in digest)


def _generate(cert_path: Path, key_path: Path, host: str) -> None:
    """A self-signed RSA-2048 server certificate for ``host`` (RSA: every RDP client
    accepts it), written key first with mode 0600, each file replaced atomically."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    now = dt.datetime.now(dt.UTC)  # wall clock: clients check validity against theirs
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # mstsc wants Server Authentication when an EKU is present
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        0o600,
    )
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write beside, then rename: a reader never sees half a file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)


@contextlib.contextmanager
def _lock(instance: Path) -> Iterator[None]:
    """Serialise generation between the processes of one instance (run, proxy, web)."""
    with (instance / ".rdp-proxy-cert.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
