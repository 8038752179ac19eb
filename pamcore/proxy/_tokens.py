"""Tokens a proxy redeems: the dashboard's connection tokens (browser terminal, ``.rdp``
file), once across every node."""

from __future__ import annotations

from dataclasses import dataclass

from pamcore.core import Pamcore
from pamcore.errors import PolicyDenied
from pamcore.model import User
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
