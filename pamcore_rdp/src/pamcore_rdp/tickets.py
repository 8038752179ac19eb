"""One-time redirection tickets between Phase A and Phase B (docs/design/rdp.md §3.4).

Phase A (the front) signs the user in and sends a Server Redirection PDU whose load
balance info is a ticket; the client reconnects to the same listener with
``Cookie: msts=<ticket>`` and Phase B (the relay) redeems it. A ticket is random
(``secrets.token_urlsafe``), lives in the listener process's memory only, is good for
:data:`TICKET_SECONDS`, once, and only from the client address it was issued to. A ticket
refused for any reason is burnt.
"""

from __future__ import annotations

import ipaddress
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pamcore.errors import AuthenticationFailed

#: Time for the client to follow the redirection (it reconnects at once; mstsc may show a
#: certificate prompt again first).
TICKET_SECONDS = 30.0
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


@dataclass(frozen=True)
class _Issued:
    grant: Pass
    client_ip: str
    expires: float


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
    """The listener's outstanding tickets. ``now`` is a monotonic clock in seconds
    (tests pass their own)."""

    def __init__(
        self, seconds: float = TICKET_SECONDS, now: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = seconds
        self._now = now
        self._issued: dict[str, _Issued] = {}
        #: Redeemed or refused tickets until they would have expired: "already used".
        self._burnt: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self, user_id: int, session_id: int, resource_name: str, client_ip: str) -> str:
        ticket = secrets.token_urlsafe(TICKET_BYTES)
        with self._lock:
            self._forget_expired()
            self._issued[ticket] = _Issued(
                Pass(user_id, session_id, resource_name),
                normalise_ip(client_ip),
                self._now() + self.seconds,
            )
        return ticket

    def redeem(self, ticket: str, client_ip: str) -> Pass:
        """The ticket's pass, spent; raises :class:`TicketRefused` with the reason
        (unknown, already used, expired, or another client address)."""
        with self._lock:
            now = self._now()
            issued = self._issued.pop(ticket, None)
            if issued is None:
                if ticket in self._burnt:
                    raise TicketRefused(f"this redirection ticket was already used; {AGAIN}")
                raise TicketRefused(f"this redirection ticket is not known here; {AGAIN}")
            self._burnt[ticket] = issued.expires
            if now > issued.expires:
                raise TicketRefused(
                    f"this redirection ticket expired (it is good for {self.seconds:.0f} s); "
                    f"{AGAIN}"
                )
            if normalise_ip(client_ip) != issued.client_ip:
                raise TicketRefused(
                    f"this redirection ticket was issued to another client address; {AGAIN}"
                )
            return issued.grant

    def __len__(self) -> int:
        """Tickets held (expired ones are dropped as new ones are issued)."""
        return len(self._issued)

    def _forget_expired(self) -> None:
        """Drop tickets one lifetime after they expired: until then a late client is told
        "expired" or "already used" rather than "not known"."""
        horizon = self._now() - self.seconds
        self._issued = {t: i for t, i in self._issued.items() if i.expires >= horizon}
        self._burnt = {t: x for t, x in self._burnt.items() if x >= horizon}
