"""One-time redirection tickets between Phase A and Phase B (docs/design/rdp.md §3.4).

Phase A (the front) signs the user in and sends a Server Redirection PDU whose load
balance info is a ticket; the client reconnects with ``Cookie: msts=<ticket>`` and Phase B
(the relay) redeems it. A ticket is random (``secrets.token_urlsafe``), held in the
database by its SHA-256 with what it grants (:mod:`pamcore.services.single_use`), so the
reconnection may reach any proxy node, even one restarted since. It is good for
:data:`TICKET_SECONDS` by the core's clock, once across all nodes, and only from the client
address it was issued to. A ticket refused for any reason is burnt.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
from dataclasses import asdict, dataclass

from pamcore.core import Pamcore
from pamcore.errors import AuthenticationFailed
from pamcore.services import single_use

#: Time for the client to follow the redirection (it reconnects at once; mstsc may show a
#: certificate prompt again first).
TICKET_SECONDS = 30.0
#: The tickets' kind in the single-use table.
KIND = "rdp-ticket"
#: 24 random bytes: 32 characters, well inside the X.224 Connection Request's 254 bytes.
TICKET_BYTES = 24
AGAIN = "connect again"


class TicketRefused(AuthenticationFailed):
    """A ticket that does not let the client in; the message says why (never the ticket)."""


@dataclass(frozen=True)
class Pass:
    """What a redeemed ticket lets Phase B admit: this user, session and resource."""

    user_id: int
    session_id: int
    resource_name: str


def normalise_ip(address: str) -> str:
    """``::ffff:10.0.0.1`` and ``10.0.0.1`` are one client (dual-stack listeners)."""
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return address.strip()
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


class TicketBook:
    """Issues and redeems the redirection tickets of every listener on the database."""

    def __init__(self, core: Pamcore, seconds: float = TICKET_SECONDS) -> None:
        self.core = core
        self.seconds = seconds

    def issue(self, user_id: int, session_id: int, resource_name: str, client_ip: str) -> str:
        ticket = secrets.token_urlsafe(TICKET_BYTES)
        payload = {
            **asdict(Pass(user_id, session_id, resource_name)),
            "ip": normalise_ip(client_ip),
        }
        expires = self.core.now() + dt.timedelta(seconds=self.seconds)
        single_use.hold(self.core, KIND, ticket, expires, payload=payload)
        return ticket

    def redeem(self, ticket: str, client_ip: str) -> Pass:
        """The ticket's pass, spent; raises :class:`TicketRefused` with the reason
        (unknown, already used, expired, or another client address)."""
        found = single_use.redeem(self.core, KIND, ticket)
        if found.outcome is single_use.Outcome.SPENT_BEFORE:
            raise TicketRefused(f"this redirection ticket was already used; {AGAIN}")
        if found.outcome is single_use.Outcome.UNKNOWN:
            raise TicketRefused(f"this redirection ticket is not known here; {AGAIN}")
        assert found.expires_at is not None
        if self.core.now() > found.expires_at:
            raise TicketRefused(
                f"this redirection ticket expired (it is good for {self.seconds:.0f} s); {AGAIN}"
            )
        payload = dict(found.payload)
        if normalise_ip(client_ip) != payload.pop("ip"):
            raise TicketRefused(
                f"this redirection ticket was issued to another client address; {AGAIN}"
            )
        return Pass(**payload)
