"""What the SSH proxy records about a connection beyond the kit's admission (host keys,
handshake hints, legacy algorithms, refused forwarding). Synchronous calls, each in a unit
of work of its own, run by the proxy in worker threads (``asyncio.to_thread``)."""

from __future__ import annotations

from pamcore.core import Pamcore
from pamcore.model import Resource
from pamcore.proxy import LEGACY_ALGORITHMS, Admitted, DirectConnectName, audit, pin_host_key
from pamcore_ssh.hooks import ssh_handshake_hint
from pamcore_ssh.target import SshTarget

PROTOCOL = "ssh"


def host_key_outcome(
    core: Pamcore, admitted: Admitted[SshTarget], line: str, offered: str, refusal: str | None
) -> None:
    """After the key exchange: pin a first-use key, or audit a refused one."""
    if refusal is None:
        pin_host_key(core, admitted.resource_id, line, admitted.username)
        return
    audit(
        core,
        admitted.username,
        "connection.host_key_refused",
        target=admitted.resource_name,
        session_id=admitted.session_id,
        protocol=PROTOCOL,
        offered=offered,
        reason=refusal,
    )


def handshake_hint(core: Pamcore, resource_id: int, error: str) -> str | None:
    with core.reader() as db:
        resource = db.get(Resource, resource_id)
        return ssh_handshake_hint(core.hooks, resource, error, core.config) if resource else None


def legacy_algorithms_used(
    core: Pamcore, admitted: Admitted[SshTarget], used: dict[str, str], legacy: list[str]
) -> None:
    """Audit a connection that negotiated algorithms only a plugin enabled (the
    dashboard's badge reads this event)."""
    audit(
        core,
        admitted.username,
        LEGACY_ALGORITHMS,
        target=admitted.resource_name,
        session_id=admitted.session_id,
        protocol=PROTOCOL,
        connection=admitted.connection_id,
        legacy=",".join(legacy),
        **used,
    )


def forwarding_refused(
    core: Pamcore, login: DirectConnectName, kind: str, where: str, peer: str
) -> None:
    """Audit a refused forwarding request (``ssh -L``, ``-D``, ``-W``, ``-R``): ``kind`` is
    the SSH channel or request type, ``where`` its destination or listening address."""
    audit(
        core,
        login.username,
        "connection.forwarding_refused",
        target=login.resource or "",
        protocol=PROTOCOL,
        kind=kind,
        destination=where,
        peer=peer,
    )
