"""One-time redirect tokens between Phase A and Phase B (docs/design/rdp.md §3.4).

Phase A (the front) signs the user in and sends a Server Redirection PDU whose load
balance info is a redirect token; the client reconnects with ``Cookie: msts=<token>`` and
Phase B (the relay) redeems it. A token is random (``secrets.token_urlsafe``), held in the
database by its SHA-256 with what it lets in (:func:`pamcore.proxy.hold_once`), so the
reconnection may reach any proxy node, even one restarted since. It is good for
:data:`REDIRECT_SECONDS` by the core's clock, once across all nodes, and only from the
client address it was issued to. A token refused for any reason is burnt.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
from dataclasses import asdict, dataclass

from pamcore.core import Pamcore
from pamcore.errors import AuthenticationFailed
from pamcore.proxy import hold_once, redeem_once

#: Time for the client to follow the redirection (it reconnects at once; mstsc may show a
#: certificate prompt again first).
REDIRECT_SECONDS = 30.0
#: The tokens' kind in the single-use table; stored, so it keeps the old name (tokens in
#: flight during a rolling upgrade still redeem).
KIND = "rdp-ticket"
#: 24 random bytes: 32 characters, well inside the X.224 Connection Request's 254 bytes.
REDIRECT_BYTES = 24
AGAIN = "connect again"


class RedirectRefused(AuthenticationFailed):
    """A redirect token that does not let the client in; the message says why (never the
    token)."""


@dataclass(frozen=True)
class RedirectPass:
    """What a redeemed redirect token lets Phase B admit: this user, session and resource."""

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


class RedirectTokens:
    """Issues and redeems the redirect tokens of every listener on the database."""

    def __init__(self, core: Pamcore, seconds: float = REDIRECT_SECONDS) -> None:
        self.core = core
        self.seconds = seconds

    def issue(self, user_id: int, session_id: int, resource_name: str, client_ip: str) -> str:
        token = secrets.token_urlsafe(REDIRECT_BYTES)
        payload = {
            **asdict(RedirectPass(user_id, session_id, resource_name)),
            "ip": normalise_ip(client_ip),
        }
        expires = self.core.now() + dt.timedelta(seconds=self.seconds)
        hold_once(self.core, KIND, token, expires, payload)
        return token

    def redeem(self, token: str, client_ip: str) -> RedirectPass:
        """The token's pass, spent; raises :class:`RedirectRefused` with the reason
        (unknown, already used, expired, or another client address)."""
        found = redeem_once(self.core, KIND, token)
        if not found.known:
            raise RedirectRefused(f"this redirect token is not known here; {AGAIN}")
        if not found.won:
            raise RedirectRefused(f"this redirect token was already used; {AGAIN}")
        assert found.expires_at is not None
        if self.core.now() > found.expires_at:
            raise RedirectRefused(
                f"this redirect token expired (it is good for {self.seconds:.0f} s); {AGAIN}"
            )
        payload = dict(found.payload)
        if normalise_ip(client_ip) != payload.pop("ip"):
            raise RedirectRefused(
                f"this redirect token was issued to another client address; {AGAIN}"
            )
        return RedirectPass(**payload)
