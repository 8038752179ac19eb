"""Whether the relay may trust an RDP target, decided before any credential leaves
(CredSSP's NTLM messages, or the Client Info PDU on TLS): the security protocol the target
selected, and its TLS certificate. The target is a network peer like any other: a machine
in the middle can answer in its place.

* **Protocol.** RDP_NEG_RSP ``selectedProtocol`` must be one of the flags pamcore put in
  ``requestedProtocols`` (MS-RDPBCGR 2.2.1.2.1); so ``rdp.security = nla`` cannot be
  downgraded to TLS, where the password would travel in the Client Info PDU.
* **Certificate.** Pinned per resource as SSH host keys are: ``rdp.certificate_sha256``
  (an administrator's, or the first one seen when the resource trusts on first use), or
  issued for the resource's address by a CA in the operator's ``rdp.ca_bundle`` (and, if a
  pin is set too, matching it). Anything else is refused.

Refusals are audited (``connection.protocol_refused``, ``connection.certificate_refused``,
as the SSH proxy's ``connection.host_key_refused``); a first-use pin is audited
``resource.certificate_pinned``. Synchronous service calls: the target leg runs them in
worker threads.
"""

from __future__ import annotations

import hashlib
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from pamcore.core import Pamcore
from pamcore.errors import ProtocolError
from pamcore.model import Resource
from pamcore.proxy import Admitted, audit
from pamcore_rdp.pdu.x224 import PROTOCOL_HYBRID, PROTOCOL_HYBRID_EX, PROTOCOL_SSL
from pamcore_rdp.settings import PLUGIN, target_settings

if TYPE_CHECKING:
    from pamcore_rdp.proxy.target import RdpTarget

PIN_SETTING = "certificate_sha256"
C = TypeVar("C", bound=ssl.SSLContext)
_PROTOCOL_NAMES = {
    PROTOCOL_SSL: "TLS (0x1)",
    PROTOCOL_HYBRID: "NLA (0x2)",
    PROTOCOL_HYBRID_EX: "NLA with early authorization (0x8)",
}


class TargetRefused(ProtocolError):
    """pamcore refused the target (protocol or certificate); audited, and the message says
    what an administrator can do."""


@dataclass(frozen=True)
class CertificateTrust:
    """What a resource's certificate is checked against (``pinned``: ``AB:CD:...`` or "")."""

    pinned: str
    ca_bundle: str
    trust_on_first_use: bool


def certificate_trust(resource: Resource) -> CertificateTrust:
    settings = target_settings(resource)
    return CertificateTrust(
        pinned=settings.certificate_sha256,
        ca_bundle=settings.ca_bundle,
        trust_on_first_use=resource.trust_on_first_use,
    )


def certificate_sha256(der: bytes) -> str:
    """``AB:CD:...``, as FreeRDP and ``openssl x509 -fingerprint -sha256`` print it."""
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


# -- the selected protocol -------------------------------------------------------------------


def protocol_refusal(admitted: Admitted[RdpTarget], requested: int, selected: int) -> str | None:
    """Why the target's ``selected`` protocol is refused, or ``None``: it must be one of the
    flags we requested (MS-RDPBCGR 2.2.1.2.1), which ``rdp.security`` decides."""
    if selected in _PROTOCOL_NAMES and selected & requested:
        return None
    asked = ", ".join(name for flag, name in _PROTOCOL_NAMES.items() if flag & requested)
    chose = _PROTOCOL_NAMES.get(selected, f"0x{selected:x}")
    return (
        f"target {admitted.resource_name} selected {chose}, which pamcore did not request "
        f"(rdp.security is {admitted.extra.security}: {asked}); refused before sending any "
        "credential, as a machine in the middle may be downgrading the connection. If the "
        "target really has no NLA, set rdp.security to tls: pamcore resources set-setting "
        f"{admitted.resource_name} rdp.security tls"
    )


def refuse_protocol(
    core: Pamcore, admitted: Admitted[RdpTarget], requested: int, selected: int
) -> None:
    """Audit and raise :class:`TargetRefused` unless the selected protocol was requested."""
    reason = protocol_refusal(admitted, requested, selected)
    if reason is not None:
        _refuse(
            core,
            admitted,
            "connection.protocol_refused",
            reason,
            requested=requested,
            selected=selected,
        )


# -- the certificate -------------------------------------------------------------------------


def configure_tls(context: ssl.SSLContext, trust: CertificateTrust) -> None:
    """TLS 1.2 or later; with a CA bundle, OpenSSL checks the chain and the address (raises
    OSError or ssl.SSLError if the bundle cannot be loaded); without one, the pin does
    (:func:`check_certificate`)."""
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if trust.ca_bundle:
        context.load_verify_locations(cafile=trust.ca_bundle)
        context.verify_mode = ssl.CERT_REQUIRED
        context.check_hostname = True
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE


def tls_context(core: Pamcore, admitted: Admitted[RdpTarget], kind: type[C]) -> C:
    """The target leg's client context (``kind``: ``ssl.SSLContext``, or CredSSP's); a CA
    bundle that cannot be loaded is a refusal."""
    context = kind(ssl.PROTOCOL_TLS_CLIENT)
    try:
        configure_tls(context, admitted.extra.trust)
    except (OSError, ssl.SSLError) as exc:
        _refuse(
            core,
            admitted,
            "connection.certificate_refused",
            f"rdp.ca_bundle of {admitted.resource_name} ({admitted.extra.trust.ca_bundle}) "
            f"cannot be loaded ({getattr(exc, 'strerror', None) or exc}); refused, as the "
            "target's certificate cannot be checked without it",
        )
    return context


def untrusted(
    core: Pamcore, admitted: Admitted[RdpTarget], error: ssl.SSLCertVerificationError
) -> TargetRefused:
    """OpenSSL rejected the certificate against ``rdp.ca_bundle``: audited; the caller
    raises what this returns."""
    return _refused(
        core,
        admitted,
        "connection.certificate_refused",
        f"the TLS certificate of {admitted.resource_name} is not trusted by rdp.ca_bundle "
        f"({admitted.extra.trust.ca_bundle}) for {admitted.address}: "
        f"{error.verify_message or error.reason}; refused before sending any credential",
    )


def certificate_refusal(name: str, trust: CertificateTrust, offered: str) -> str | None:
    """Why the certificate with SHA-256 ``offered`` must not be trusted, or ``None``."""
    if trust.pinned:
        if trust.pinned == offered:
            return None
        return (
            f"the TLS certificate of {name} changed: it presented SHA-256 {offered}, not the "
            f"pinned {trust.pinned}; refused before sending any credential. If the target's "
            "certificate was legitimately replaced, check the new fingerprint on the target "
            f"and re-pin it: pamcore resources set-setting {name} rdp.certificate_sha256 "
            f"{offered} (or clear rdp.certificate_sha256 with unset-setting or on the admin "
            "Resources page: the next connection pins it if the resource trusts on first use)"
        )
    if trust.ca_bundle or trust.trust_on_first_use:
        return None  # OpenSSL checked the CA's; a first use is pinned by the caller
    return (
        f"{name} has no pinned TLS certificate (rdp.certificate_sha256), no rdp.ca_bundle, "
        f"and does not trust on first use; it presented SHA-256 {offered}. Ask an "
        "administrator to check it on the target and pin it: pamcore resources set-setting "
        f"{name} rdp.certificate_sha256 {offered}"
    )


def check_certificate(core: Pamcore, admitted: Admitted[RdpTarget], der: bytes | None) -> None:
    """Trust the target's certificate, pinning it on first use, or audit and raise
    :class:`TargetRefused`."""
    if not der:
        _refuse(
            core,
            admitted,
            "connection.certificate_refused",
            f"target {admitted.resource_name} presented no TLS certificate; refused",
        )
    offered = certificate_sha256(der)
    trust = admitted.extra.trust
    reason = certificate_refusal(admitted.resource_name, trust, offered)
    if reason is None and not trust.pinned and not trust.ca_bundle:
        reason = _pin_first_use(core, admitted, offered)
    if reason is not None:
        _refuse(core, admitted, "connection.certificate_refused", reason, offered=offered)


def _pin_first_use(core: Pamcore, admitted: Admitted[RdpTarget], offered: str) -> str | None:
    """Store ``offered`` as the resource's pin, under a row lock; when another connection
    pinned first, the certificate must match that pin instead."""
    with core.unit() as db:
        resource = db.get(Resource, admitted.resource_id, with_for_update=True)
        if resource is None:
            return f"{admitted.resource_name} no longer exists"
        now = certificate_trust(resource)
        if now.pinned or now.ca_bundle or not now.trust_on_first_use:
            return certificate_refusal(resource.name, now, offered)
        settings = {p: dict(v) for p, v in (resource.settings or {}).items()}
        settings.setdefault(PLUGIN, {})[PIN_SETTING] = offered
        resource.settings = settings  # a new object, so the JSON column is seen as changed
        core.audit(
            db,
            admitted.username,
            "resource.certificate_pinned",
            target=resource.name,
            session_id=admitted.session_id,
            protocol=PLUGIN,
            sha256=offered,
        )
    return None


def _refuse(
    core: Pamcore, admitted: Admitted[RdpTarget], action: str, reason: str, **details: Any
) -> NoReturn:
    raise _refused(core, admitted, action, reason, **details)


def _refused(
    core: Pamcore, admitted: Admitted[RdpTarget], action: str, reason: str, **details: Any
) -> TargetRefused:
    """Audit the refusal (by the connecting user, as connection.refused is)."""
    audit(
        core,
        admitted.username,
        action,
        target=admitted.resource_name,
        session_id=admitted.session_id,
        protocol=PLUGIN,
        address=f"{admitted.address}:{admitted.port}",
        reason=reason,
        **details,
    )
    return TargetRefused(reason)
