"""Tokens a proxy redeems: the dashboard's connection tokens (browser terminal, ``.rdp``
file) and secrets a proxy holds for itself once across every node (RDP's redirection).
Each call in its own unit of work."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from pamcore.core import Pamcore
from pamcore.errors import PolicyDenied
from pamcore.model import User
from pamcore.services import single_use
from pamcore.services.terminal_tokens import TERMINAL, TokenUse, redeem_terminal_token


@dataclass(frozen=True)
class ConnectionPass:
    """What a redeemed token lets the proxy try: this user, session and resource."""

    user_id: int
    username: str
    session_id: int
    resource_name: str


def redeem_token(
    core: Pamcore, token: str, protocol: str, secret: str, use: TokenUse = TERMINAL
) -> ConnectionPass:
    """Spend a token the dashboard signed for ``protocol`` (on every node, once); raises
    AuthenticationFailed or PolicyDenied with a sentence for the user's client."""
    with core.reader() as db:
        granted = redeem_terminal_token(core, db, token, protocol, secret, use)
        user = db.get(User, granted.user_id)
        if user is None:
            raise PolicyDenied(f"the user of this {use.name} no longer exists")
        return ConnectionPass(user.id, user.username, granted.session_id, granted.resource_name)


@dataclass(frozen=True)
class Once:
    """What redeeming a held secret found: ``known`` False when no node holds it (or it
    was purged), ``won`` False when it was spent before; ``expires_at`` and ``payload``
    only for the winner, who checks the expiry (an expired secret is burnt all the same)."""

    known: bool
    won: bool
    expires_at: dt.datetime | None = None
    payload: dict[str, Any] = field(default_factory=dict)


def hold_once(
    core: Pamcore, kind: str, secret: str, expires_at: dt.datetime, payload: dict[str, Any]
) -> None:
    """Keep ``secret`` unspent with ``payload`` until ``expires_at``, for
    :func:`redeem_once` on any node (only its digest is stored)."""
    single_use.hold(core, kind, secret, expires_at, payload)


def redeem_once(core: Pamcore, kind: str, secret: str) -> Once:
    """Spend a held secret: exactly one caller on any node wins it."""
    found = single_use.redeem(core, kind, secret)
    return Once(
        known=found.outcome is not single_use.Outcome.UNKNOWN,
        won=found.outcome is single_use.Outcome.WON,
        expires_at=found.expires_at,
        payload=dict(found.payload),
    )
