"""The listener's TLS certificate: generated once per instance or the operator's pair from
pamcore.toml, cross-checked with clear errors; the fingerprint we show is the one a TLS
client sees, and a real xfreerdp pinned to it connects while a wrong pin is refused."""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from pamcore_rdp.certs import (
    CERT_FILE,
    KEY_FILE,
    certificate_info,
    proxy_certificate,
    proxy_tls_context,
)
from pamcore_rdp.pdu.x224 import PROTOCOL_SSL, encode_connection_confirm
from rdp_display import start_xfreerdp

from pamcore.cli.context import CliContext
from pamcore.cli.main import build_cli
from pamcore.config import CONFIG_FILE, load_config
from pamcore.core import Pamcore
from pamcore.errors import ConfigurationError
from pamcore.plugins import build_plugin_host


def make_core(instance: Path, toml: str = "") -> Pamcore:
    instance.mkdir(exist_ok=True)
    (instance / CONFIG_FILE).write_text(f'[pamcore]\npublic_host = "pam.example"\n{toml}')
    return Pamcore(load_config(instance), plugins=build_plugin_host(entry_points=False))


@pytest.fixture
def core(tmp_path: Path) -> Iterator[Pamcore]:
    core = make_core(tmp_path / "instance")
    yield core
    core.dispose()


def test_generated_once_for_the_public_host(core: Pamcore) -> None:
    cert_path, key_path, fingerprint = proxy_certificate(core)
    instance = core.config.instance_path
    assert (cert_path, key_path) == (instance / CERT_FILE, instance / KEY_FILE)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["pam.example"]
    assert fingerprint == ":".join(f"{b:02X}" for b in hashlib.sha256(_der(cert)).digest())
    assert proxy_certificate(core)[2] == fingerprint  # kept, not made again
    info = certificate_info(core)
    assert (info.source, info.subject, len(info.sha1)) == ("generated", "CN=pam.example", 59)


def _der(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.DER)


def test_a_tls_client_sees_the_fingerprint_we_show(core: Pamcore) -> None:
    context = proxy_tls_context(core)

    async def handshake() -> bytes:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        client = ssl.create_default_context()
        client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        server.close()
        return der

    seen = hashlib.sha256(asyncio.run(handshake())).hexdigest()
    assert proxy_certificate(core)[2].replace(":", "").lower() == seen


def test_the_operators_pair_from_pamcore_toml(tmp_path: Path, core: Pamcore) -> None:
    generated = certificate_info(core)
    own = tmp_path / "own"
    own.mkdir()
    (own / "rdp.crt").write_bytes(generated.cert_path.read_bytes())
    (own / "rdp.key").write_bytes(generated.key_path.read_bytes())
    operator = make_core(
        tmp_path / "second",
        f'[plugins.rdp]\ncertificate = "{own}/rdp.crt"\nkey = "../own/rdp.key"\n',
    )
    info = certificate_info(operator)
    assert (info.source, info.sha256, info.key_path) == (
        "operator",
        generated.sha256,
        tmp_path / "second" / "../own/rdp.key",
    )
    assert not (tmp_path / "second" / CERT_FILE).exists()  # nothing generated beside it


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('certificate = "rdp.crt"\n', "needs both 'certificate' and 'key'"),
        ('certificate = "missing.crt"\nkey = "k"\n', "cannot read the RDP certificate .*missing"),
        ('certificate = "pamcore.toml"\nkey = "k"\n', "pamcore.toml is not a PEM certificate"),
        ('certificate = "../instance/rdp-proxy.crt"\nkey = "pamcore.toml"\n', "not an unencrypted"),
        (
            'certificate = "../instance/rdp-proxy.crt"\nkey = "../other/rdp-proxy.key"\n',
            "rdp-proxy.key is not the private key of",
        ),
    ],
)
def test_operator_mistakes_are_clear(
    tmp_path: Path, core: Pamcore, toml: str, message: str
) -> None:
    proxy_certificate(core)
    proxy_certificate(other := make_core(tmp_path / "other"))
    other.dispose()
    broken = make_core(tmp_path / "broken", f"[plugins.rdp]\n{toml}")
    with pytest.raises(ConfigurationError, match=message):
        proxy_tls_context(broken)


def test_xfreerdp_pinned_to_the_shown_fingerprint_connects(
    xvfb_display: str, core: Pamcore
) -> None:
    """A real client checks the fingerprint as a user would: past TLS with the right one,
    refused with another (the server side is a stub that stops after TLS)."""
    context = proxy_tls_context(core)

    async def reaches_mcs(pin: str) -> bool:
        reached: asyncio.Queue[bool] = asyncio.Queue()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            header = await reader.readexactly(4)
            await reader.readexactly(int.from_bytes(header[2:]) - 4)
            writer.write(encode_connection_confirm(PROTOCOL_SSL))
            await writer.drain()
            try:
                await writer.start_tls(context)
                first = await asyncio.wait_for(reader.readexactly(1), 10)
                reached.put_nowait(first == b"\x03")  # the MCS Connect Initial's TPKT
            except (OSError, asyncio.IncompleteReadError, ssl.SSLError, TimeoutError):
                reached.put_nowait(False)
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = start_xfreerdp(
            [f"/v:127.0.0.1:{port}", "/u:x", "/p:y", "/sec:tls", f"/cert:fingerprint:sha256:{pin}"],
            xvfb_display,
        )
        try:
            return await asyncio.wait_for(reached.get(), 15)
        finally:
            client.finish()
            server.close()

    shown = proxy_certificate(core)[2]
    assert asyncio.run(reaches_mcs(shown))
    assert not asyncio.run(reaches_mcs(":".join(["00"] * 32)))


def test_pamcore_rdp_certificate_for_operators(tmp_path: Path) -> None:
    instance = tmp_path / "inst"

    def pamcore(*args: str) -> Result:
        return CliRunner().invoke(
            build_cli(), ["--instance", str(instance), *args], obj=CliContext(instance=None)
        )

    assert pamcore("init").exit_code == 0
    shown = pamcore("--json", "rdp", "certificate")
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.output)
    assert record["source"] == "generated" and record["certificate"].endswith(CERT_FILE)
    core = Pamcore(load_config(instance), plugins=build_plugin_host(entry_points=False))
    assert record["sha256"] == proxy_certificate(core)[2]
    core.dispose()
    with (instance / CONFIG_FILE).open("a") as config:
        config.write('\n[plugins.rdp]\ncertificate = "nowhere.crt"\nkey = "nowhere.key"\n')
    broken = pamcore("rdp", "certificate")
    assert broken.exit_code != 0 and "Traceback" not in broken.output
    assert "cannot read the RDP certificate" in broken.output


def test_pamcore_init_creates_the_certificate_once(tmp_path: Path) -> None:
    """The ``pamcore_init_instance`` hook: the pair exists before the listener starts (key
    0600), its fingerprint is printed, and a second init keeps it."""
    instance = tmp_path / "inst"

    def init() -> Result:
        return CliRunner().invoke(
            build_cli(), ["--instance", str(instance), "init"], obj=CliContext(instance=None)
        )

    first = init()
    cert = (instance / CERT_FILE).read_bytes()
    second = init()

    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert stat.S_IMODE((instance / KEY_FILE).stat().st_mode) == 0o600
    # init leaves every file of the instance private, the public certificate too
    assert stat.S_IMODE((instance / CERT_FILE).stat().st_mode) == 0o600
    assert (instance / CERT_FILE).read_bytes() == cert
    core = Pamcore(load_config(instance), plugins=build_plugin_host(entry_points=False))
    info = certificate_info(core)
    core.dispose()
    line = f"rdp: proxy certificate SHA-256 {info.sha256} (generated, {info.cert_path})\n"
    assert line in first.output and line in second.output


def test_pamcore_init_refuses_a_broken_operator_pair_clearly(tmp_path: Path) -> None:
    instance = tmp_path / "inst"
    instance.mkdir()
    other = make_core(tmp_path / "other")
    proxy_certificate(other)
    other.dispose()
    (instance / CONFIG_FILE).write_text(
        '[plugins.rdp]\ncertificate = "../other/rdp-proxy.crt"\nkey = "pamcore.toml"\n'
    )

    result = CliRunner().invoke(
        build_cli(), ["--instance", str(instance), "init"], obj=CliContext(instance=None)
    )

    assert result.exit_code == 10
    assert "rdp: FAILED: " in result.output
    assert "pamcore.toml is not an unencrypted PEM private key" in result.output
    assert "fix it and run 'pamcore init' again" in result.output
    assert "Traceback" not in result.output
    assert not (instance / CERT_FILE).exists() and not (instance / KEY_FILE).exists()
