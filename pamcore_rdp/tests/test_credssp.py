"""CredSSP to a real NLA target (freerdp-shadow-cli, docs/design/rdp.md §4.3): the right vaulted
password opens the target leg, a wrong one is a clear refusal (not a hang: pyspnego's
close_notify loop), the wrong inner mechanism gets a hint naming the setting."""

from __future__ import annotations

import asyncio
import ssl
import time

import pytest
from pamcore_rdp.pdu.wire import read_pdu
from pamcore_rdp.pdu.x224 import (
    PROTOCOL_HYBRID,
    PROTOCOL_HYBRID_EX,
    PROTOCOL_SSL,
    encode_connection_request,
    parse_connection_confirm,
)
from pamcore_rdp.proxy.credssp import (
    CredentialRefused,
    CredSSPError,
    CredSSPLeg,
    TargetTLSContext,
    _early_user_authorization,
    authenticate,
)
from pamcore_rdp.proxy.trust import CertificateTrust, configure_tls
from rdp_targets import ShadowTarget


class Refuse(Exception):
    """What a certificate check raises to refuse the target."""


async def _credssp(
    target: ShadowTarget,
    password: str,
    mechanism: str = "ntlm",
    seen: list[bytes | None] | None = None,
    refuse: bool = False,
) -> tuple[CredSSPLeg, asyncio.StreamWriter]:
    """X.224 to the target asking for NLA, then CredSSP as the relay runs it; ``seen``
    gets the certificate the check was given, ``refuse`` makes the check refuse it."""

    async def check(der: bytes | None) -> None:
        (seen if seen is not None else []).append(der)
        if refuse:
            raise Refuse

    tls = TargetTLSContext(ssl.PROTOCOL_TLS_CLIENT)
    configure_tls(tls, CertificateTrust(pinned="", ca_bundle="", trust_on_first_use=True))
    reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
    requested = PROTOCOL_SSL | PROTOCOL_HYBRID | PROTOCOL_HYBRID_EX
    writer.write(encode_connection_request(requested_protocols=requested))
    confirm = parse_connection_confirm(await read_pdu(reader, 5))
    assert confirm.selected_protocol in (PROTOCOL_HYBRID, PROTOCOL_HYBRID_EX)
    try:
        leg = await authenticate(
            reader,
            writer,
            tls=tls,
            check_certificate=check,
            username=target.username,
            password=password,
            domain="",
            mechanism=mechanism,
            hostname="127.0.0.1",
            resource="shadow01",
            early_auth=confirm.selected_protocol == PROTOCOL_HYBRID_EX,
            timeout=10,
        )
    except BaseException:
        writer.close()
        raise
    return leg, writer


def test_vaulted_password_opens_the_target_leg(shadow_target: ShadowTarget) -> None:
    seen: list[bytes | None] = []

    async def scenario() -> bytes:
        leg, writer = await _credssp(shadow_target, shadow_target.password, seen=seen)
        try:
            # The target now waits for the MCS Connect Initial inside CredSSP's TLS: a
            # garbage frame written through the leg makes it close, which the leg reads as
            # the end of the stream (b'') instead of hanging in pyspnego's unwrap.
            leg.write(b"\x03\x00\x00\x08\x02\xf0\x80\x00")
            await leg.drain()
            return await asyncio.wait_for(leg.read(), 10)
        finally:
            writer.close()

    assert asyncio.run(scenario()) == b""
    assert len(seen) == 1 and seen[0], "the certificate is checked once, before CredSSP"


def test_refused_certificate_ends_credssp_before_any_message(
    shadow_target: ShadowTarget,
) -> None:
    """The check runs once TLS is up and before the first TSRequest: refusing there means
    no NTLM message and no TSCredentials ever reach the target."""
    seen: list[bytes | None] = []
    with pytest.raises(Refuse):
        asyncio.run(_credssp(shadow_target, shadow_target.password, seen=seen, refuse=True))
    assert len(seen) == 1 and seen[0]


def test_wrong_vaulted_password_is_refused_in_plain_words(shadow_target: ShadowTarget) -> None:
    started = time.monotonic()
    with pytest.raises(CredentialRefused) as refused:
        asyncio.run(_credssp(shadow_target, "not-the-password"))
    assert str(refused.value) == (
        "the vaulted password for shadowuser@shadow01 was refused by the target (CredSSP)"
    )
    assert time.monotonic() - started < 5  # the target's close_notify ends it at once
    assert "not-the-password" not in str(refused.value)


def test_wrong_mechanism_names_the_setting_to_change(shadow_target: ShadowTarget) -> None:
    """FreeRDP 2 rejects SPNEGO inside CredSSP (docs/design/rdp.md §2)."""
    with pytest.raises(CredSSPError) as failed:
        asyncio.run(_credssp(shadow_target, shadow_target.password, mechanism="negotiate"))
    assert not isinstance(failed.value, CredentialRefused)
    assert "set-setting shadow01 rdp.nla_mechanism ntlm" in str(failed.value)


class DecryptedStream:
    """Stands in (a mock) for the CredSSP exchange after completion: what the target sent
    inside TLS. No local RDP server selects HYBRID_EX (freerdp-shadow 2.11 answers HYBRID)."""

    def __init__(self, data: bytes) -> None:
        self.plain = bytearray(data)

    async def plaintext(self, complete: int | None = None) -> None:
        assert complete is not None and len(self.plain) >= complete


def test_early_user_authorization_success_keeps_what_follows() -> None:
    stream = DecryptedStream(b"\x00\x00\x00\x00\x03\x00")
    asyncio.run(_early_user_authorization(stream, "admin@win01"))  # type: ignore[arg-type]
    assert stream.plain == b"\x03\x00"  # the first bytes of the next PDU stay for the relay


def test_early_user_authorization_denied_is_a_refusal_that_says_why() -> None:
    with pytest.raises(CredentialRefused, match="ACCESS_DENIED.*Remote Desktop"):
        asyncio.run(_early_user_authorization(DecryptedStream(b"\x05\0\0\0"), "admin@win01"))  # type: ignore[arg-type]


def test_early_user_authorization_unknown_result_is_a_protocol_error() -> None:
    with pytest.raises(CredSSPError, match="0x00000009"):
        asyncio.run(_early_user_authorization(DecryptedStream(b"\x09\0\0\0"), "admin@win01"))  # type: ignore[arg-type]
