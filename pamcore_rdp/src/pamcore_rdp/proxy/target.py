"""The relay's target leg: TCP to the RDP server, our X.224 negotiation (MS-RDPBCGR
2.2.1.1-2.2.1.2) and its security layer, TLS or CredSSP (NLA) with the vaulted credential
(:mod:`pamcore_rdp.proxy.credssp`). Every step takes its timeout; a failure is a
:class:`TargetError` that names what to do (docs/design/rdp.md §3.1). The target's selected
protocol and its certificate are checked (:mod:`pamcore_rdp.proxy.trust`) before any credential
leaves: CredSSP starts, and the Client Info PDU is relayed, only after both."""

from __future__ import annotations

import asyncio
import ssl
from typing import Protocol

from pamcore.core import Pamcore
from pamcore.errors import ProtocolError
from pamcore_rdp.pdu.wire import read_pdu
from pamcore_rdp.pdu.x224 import (
    HYBRID_REQUIRED_BY_SERVER,
    PROTOCOL_HYBRID,
    PROTOCOL_HYBRID_EX,
    PROTOCOL_SSL,
    SSL_CERT_NOT_ON_SERVER,
    SSL_NOT_ALLOWED_BY_SERVER,
    SSL_REQUIRED_BY_SERVER,
    SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER,
    ConnectionConfirm,
    encode_connection_request,
    parse_connection_confirm,
)
from pamcore_rdp.proxy import credssp, trust
from pamcore_rdp.proxy.admission import Grant

#: Reads and writes of the byte pump.
CHUNK = 65536
#: What each ``rdp.security`` setting asks the target for (MS-RDPBCGR 2.2.1.1.1).
REQUESTED = {
    "auto": PROTOCOL_SSL | PROTOCOL_HYBRID | PROTOCOL_HYBRID_EX,
    "nla": PROTOCOL_HYBRID | PROTOCOL_HYBRID_EX,
    "tls": PROTOCOL_SSL,
}
#: The target's RDP_NEG_FAILURE codes (2.2.1.2.2), as the operator can act on them.
_FAILURES = {
    SSL_REQUIRED_BY_SERVER: "requires TLS without NLA; set rdp.security to tls or auto",
    SSL_NOT_ALLOWED_BY_SERVER: (
        "allows only standard RDP security, which pamcore does not relay; enable TLS or "
        "NLA on the target"
    ),
    SSL_CERT_NOT_ON_SERVER: "has no TLS certificate configured",
    HYBRID_REQUIRED_BY_SERVER: "requires NLA; set rdp.security to nla or auto",
    SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER: (
        "requires TLS client certificates, which pamcore does not support"
    ),
}


class TargetError(ProtocolError):
    """The target cannot be reached or refused us; the message is for the user and the
    audit log, and names what to do."""


class TargetLeg(Protocol):
    """The target side after its security layer: TLS, or CredSSP's TLS."""

    async def read(self, size: int = CHUNK) -> bytes: ...

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def close(self) -> None: ...


class _StreamLeg:
    """A TLS target leg on asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, size: int = CHUNK) -> bytes:
        return await self._reader.read(size)

    def write(self, data: bytes) -> None:
        self._writer.write(data)

    async def drain(self) -> None:
        await self._writer.drain()

    def close(self) -> None:
        self._writer.close()


async def open_target(
    grant: Grant, timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """TCP to the target; the caller owns the writer from here (it closes it at the end)."""
    try:
        return await asyncio.wait_for(asyncio.open_connection(grant.address, grant.port), timeout)
    except TimeoutError:
        raise TargetError(f"target {_where(grant)} did not answer within {timeout:g} s") from None
    except OSError as exc:
        raise TargetError(
            f"target {_where(grant)} is unreachable: {exc.strerror or exc}; is RDP enabled there?"
        ) from None


async def negotiate_target(
    core: Pamcore,
    grant: Grant,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    timeout: float,
) -> ConnectionConfirm:
    """Our Connection Request and the target's choice (MS-RDPBCGR 2.2.1.1-2), which must
    be TLS or NLA, and one we requested (2.2.1.2.1; a refusal is audited)."""
    where = _where(grant)
    requested = REQUESTED.get(grant.security, REQUESTED["auto"])
    writer.write(
        encode_connection_request(
            cookie=_cookie(grant.login_account), requested_protocols=requested
        )
    )
    await writer.drain()
    try:
        confirm = parse_connection_confirm(await read_pdu(reader, timeout))
    except (TimeoutError, asyncio.IncompleteReadError):
        raise TargetError(f"target {where} did not answer the RDP connection request") from None
    if confirm.failure_code is not None:
        why = _FAILURES.get(
            confirm.failure_code, f"refused the negotiation (code {confirm.failure_code})"
        )
        raise TargetError(f"target {where} {why}")
    selected = confirm.selected_protocol
    if selected not in (PROTOCOL_SSL, PROTOCOL_HYBRID, PROTOCOL_HYBRID_EX):
        raise TargetError(
            f"target {where} chose security protocol 0x{selected:x}, which pamcore does not "
            "relay (it needs TLS or NLA)"
        )
    await asyncio.to_thread(trust.refuse_protocol, core, grant, requested, selected)
    return confirm


async def secure_target(
    core: Pamcore,
    grant: Grant,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    selected: int,
    timeout: float,
) -> TargetLeg:
    """TLS on the target leg, or CredSSP with the vaulted credential when it chose NLA;
    either way the target's certificate is checked (and pinned on first use) first."""
    if selected == PROTOCOL_SSL:
        context = await asyncio.to_thread(trust.tls_context, core, grant, ssl.SSLContext)
        try:
            async with asyncio.timeout(timeout):
                await writer.start_tls(context, server_hostname=grant.address)
        except ssl.SSLCertVerificationError as exc:
            raise await asyncio.to_thread(trust.untrusted, core, grant, exc) from None
        tls = writer.get_extra_info("ssl_object")
        der = tls.getpeercert(binary_form=True) if tls is not None else None
        await asyncio.to_thread(trust.check_certificate, core, grant, der)
        return _StreamLeg(reader, writer)
    if grant.password is None:
        raise TargetError(
            f"{grant.resource_name} requires NLA, but the session has no vaulted password "
            f"for {grant.login_account}"
        )

    context = await asyncio.to_thread(trust.tls_context, core, grant, credssp.TargetTLSContext)

    async def check(der: bytes | None) -> None:
        await asyncio.to_thread(trust.check_certificate, core, grant, der)

    try:
        return await credssp.authenticate(
            reader,
            writer,
            tls=context,
            check_certificate=check,
            username=grant.login_account,
            password=grant.password,
            domain=grant.domain,
            mechanism=grant.nla_mechanism,
            hostname=grant.address,
            resource=grant.resource_name,
            early_auth=selected == PROTOCOL_HYBRID_EX,
            timeout=timeout,
        )
    except ssl.SSLCertVerificationError as exc:
        raise await asyncio.to_thread(trust.untrusted, core, grant, exc) from None


def _where(grant: Grant) -> str:
    return f"{grant.resource_name} ({grant.address}:{grant.port})"


def _cookie(account: str) -> str | None:
    """``mstshash`` for the target's logs and load balancers, as clients send it."""
    return account if account.isascii() and account.isprintable() else None
