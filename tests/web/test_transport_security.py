"""HTTPS for the dashboard: Secure cookies and Strict-Transport-Security whenever people
reach it over TLS only, whether cheroot serves the TLS or a reverse proxy terminates it."""

from __future__ import annotations

import datetime as dt
import ssl
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from werkzeug.test import TestResponse

from pamcore.core import Pamcore
from pamcore.testing import builders as b
from pamcore.web.app import create_app
from pamcore.web.server import WebServer

HSTS = "max-age=31536000"
PASSWORD = "Transport-test-pw-1"


@pytest.fixture
def dana(core: Pamcore) -> str:
    """A user of this test's own, who signs in with :data:`PASSWORD`."""
    with core.unit() as db:
        b.make_user(db, "dana", password=PASSWORD)
    return "dana"


def session_cookies(response: TestResponse) -> list[str]:
    return [c for c in response.headers.getlist("Set-Cookie") if c.startswith("pamcore_session=")]


def signed_in(core: Pamcore, username: str) -> TestResponse:
    """A sign-in through the dashboard; its answer carries the session cookie."""
    app = create_app(core, {"TESTING": True, "WTF_CSRF_ENABLED": False})
    response = app.test_client().post("/login", data={"username": username, "password": PASSWORD})
    assert response.status_code == 303
    return response


def test_plain_http_sends_no_hsts_and_plain_cookies(core: Pamcore, dana: str) -> None:
    response = signed_in(core, dana)

    assert "Strict-Transport-Security" not in response.headers
    [cookie] = session_cookies(response)
    assert "Secure" not in cookie


def test_behind_a_tls_proxy_cookies_are_secure_and_hsts_is_sent(
    core: Pamcore, dana: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core, "config", core.config.with_overrides(web_behind_tls_proxy=True))

    response = signed_in(core, dana)
    page = create_app(core, {"TESTING": True}).test_client().get("/login")

    [cookie] = session_cookies(response)
    assert "; Secure" in cookie
    assert response.headers["Strict-Transport-Security"] == HSTS
    assert page.headers["Strict-Transport-Security"] == HSTS


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1, made for this test only."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "web.crt", folder / "web.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_cheroot_serving_tls_sends_hsts_and_secure_cookies(
    core: Pamcore, dana: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if core.engine.dialect.name != "sqlite":
        pytest.skip("serving over TLS is the same on every backend: run once, on SQLite")
    cert, key = self_signed(tmp_path)
    monkeypatch.setattr(
        core, "config", core.config.with_overrides(web_tls_cert=cert, web_tls_key=key)
    )
    server = WebServer(core, "127.0.0.1", 0, threads=2)
    url = server.start()
    try:
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False  # the certificate names 127.0.0.1 as its CN only
        with urllib.request.urlopen(f"{url}/login", context=context, timeout=10) as answer:  # noqa: S310 (our https URL)
            headers = answer.headers
    finally:
        server.stop()

    assert url.startswith("https://")
    assert headers["Strict-Transport-Security"] == HSTS
    cookies = [c for c in headers.get_all("Set-Cookie") or [] if c.startswith("pamcore_session=")]
    assert cookies and all("; Secure" in c for c in cookies)
