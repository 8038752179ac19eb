"""The relay's target leg: TCP to the RDP server, our X.224 negotiation (MS-RDPBCGR
2.2.1.1-2.2.1.2) and its security layer, TLS or CredSSP (NLA) with the vaulted credential
(:mod:`pamcore_rdp.proxy.credssp`). Every step takes its timeout; a failure is a
:class:`TargetError` that names what to do (docs/design/rdp.md §3.1). The target's selected
protocol and its certificate are checked (:mod:`pamcore_rdp.proxy.trust`) before any credential
leaves: CredSSP starts, and the Client Info PDU is relayed, only after both.

What RDP needs of the resource beyond the kit's :class:`~pamcore.proxy.Admitted` (the
account split from its domain, the security settings, the certificate trust) is read in
the admission's unit of work by :func:`rdp_target`, the ``extra=`` of
:func:`pamcore.proxy.admit`."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.errors import ProtocolError
from pamcore.model import ActivitySession, Resource
from pamcore.proxy import Admitted
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
from pamcore_rdp.proxy.trust import CertificateTrust, certificate_trust
from pamcore_rdp.settings import target_settings

PROTOCOL = "rdp"

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


@dataclass(frozen=True)
class RdpTarget:
    """The RDP side of an admitted connection (``Admitted[RdpTarget].extra``)."""

    #: The target account without a ``DOMAIN\\`` prefix (that goes to ``domain``).
    account: str
    domain: str
    #: ``auto`` | ``nla`` | ``tls`` and ``negotiate`` | ``ntlm`` (:mod:`pamcore_rdp.settings`).
    security: str
    nla_mechanism: str
    #: What the target's TLS certificate must match (:mod:`pamcore_rdp.proxy.trust`).
    trust: CertificateTrust


def rdp_target(
    core: Pamcore, db: Session, session: ActivitySession, resource: Resource
) -> RdpTarget:
    """The ``extra=`` of :func:`pamcore.proxy.admit`: the resource's RDP settings and the
    session's account, read in the admission's unit."""
    settings = target_settings(resource)
    domain, account = split_account(session.login_account, settings.domain)
    return RdpTarget(
        account=account,
        domain=domain,
        security=settings.security,
        nla_mechanism=settings.nla_mechanism,
        trust=certificate_trust(resource),
    )


def split_account(account: str, default_domain: str) -> tuple[str, str]:
    """(domain, user) of a vaulted account: ``CORP\\admin`` names its domain; otherwise the
    resource's ``rdp.domain`` (a ``user@corp.example`` UPN stays whole, NTLM accepts it)."""
    domain, sep, user = account.partition("\\")
    return (domain, user) if sep else (default_domain, account)


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
    admitted: Admitted[RdpTarget], timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """TCP to the target; the caller owns the writer from here (it closes it at the end)."""
    try:
        return await asyncio.wait_for(
            asyncio.open_connection(admitted.address, admitted.port), timeout
        )
    except TimeoutError:
        raise TargetError(
            f"target {_where(admitted)} did not answer within {timeout:g} s"
        ) from None
    except OSError as exc:
        raise TargetError(
            f"target {_where(admitted)} is unreachable: {exc.strerror or exc}; "
            "is RDP enabled there?"
        ) from None


async def negotiate_target(
    core: Pamcore,
    admitted: Admitted[RdpTarget],
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    timeout: float,
) -> ConnectionConfirm:
    """Our Connection Request and the target's choice (MS-RDPBCGR 2.2.1.1-2), which must
    be TLS or NLA, and one we requested (2.2.1.2.1; a refusal is audited)."""
    where = _where(admitted)
    requested = REQUESTED.get(admitted.extra.security, REQUESTED["auto"])
    writer.write(
        encode_connection_request(
            cookie=_cookie(admitted.extra.account), requested_protocols=requested
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
    await asyncio.to_thread(trust.refuse_protocol, core, admitted, requested, selected)
    return confirm


async def secure_target(
    core: Pamcore,
    admitted: Admitted[RdpTarget],
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    selected: int,
    timeout: float,
) -> TargetLeg:
    """TLS on the target leg, or CredSSP with the vaulted credential when it chose NLA;
    either way the target's certificate is checked (and pinned on first use) first."""
    if selected == PROTOCOL_SSL:
        context = await asyncio.to_thread(trust.tls_context, core, admitted, ssl.SSLContext)
        try:
            async with asyncio.timeout(timeout):
                await writer.start_tls(context, server_hostname=admitted.address)
        except ssl.SSLCertVerificationError as exc:
            raise await asyncio.to_thread(trust.untrusted, core, admitted, exc) from None
        tls = writer.get_extra_info("ssl_object")
        der = tls.getpeercert(binary_form=True) if tls is not None else None
        await asyncio.to_thread(trust.check_certificate, core, admitted, der)
        return _StreamLeg(reader, writer)
    if admitted.password is None:
        raise TargetError(
            f"{admitted.resource_name} requires NLA, but the session has no vaulted password "
            f"for {admitted.extra.account}"
        )

    context = await asyncio.to_thread(trust.tls_context, core, admitted, credssp.TargetTLSContext)

    async def check(der: bytes | None) -> None:
        await asyncio.to_thread(trust.check_certificate, core, admitted, der)

    try:
        return await credssp.authenticate(
            reader,
            writer,
            tls=context,
            check_certificate=check,
            username=admitted.extra.account,
            password=admitted.password,
            domain=admitted.extra.domain,
            mechanism=admitted.extra.nla_mechanism,
            hostname=admitted.address,
            resource=admitted.resource_name,
            early_auth=selected == PROTOCOL_HYBRID_EX,
            timeout=timeout,
        )
    except ssl.SSLCertVerificationError as exc:
        raise await asyncio.to_thread(trust.untrusted, core, admitted, exc) from None


def _where(admitted: Admitted[RdpTarget]) -> str:
    return f"{admitted.resource_name} ({admitted.address}:{admitted.port})"


def _cookie(account: str) -> str | None:
    """``mstshash`` for the target's logs and load balancers, as clients send it."""
    return account if account.isascii() and account.isprintable() else None
