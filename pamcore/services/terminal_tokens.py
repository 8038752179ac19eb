"""Connection tokens: the dashboard signs one for the session's requester, a protocol
plugin's listener redeems it once, before it runs the ordinary connection authorisation.
A :class:`TokenUse` says what a token is for: the browser terminal's (a minute, sent as the
WebSocket's first message) or, e.g., the RDP plugin's ``.rdp`` file routing token.

Signed with the instance's secret key (itsdangerous, HMAC-SHA1 over a salted key
derivation); the expiry is in the payload and read from the core's clock. A redeemed
token's nonce is spent in the database (:mod:`pamcore.services.single_use`), so it cannot
be replayed on any node, nor after a restart.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.errors import AuthenticationFailed, NotFound, PolicyDenied
from pamcore.model import Resource, User
from pamcore.services import single_use
from pamcore.services.access import own_connectable_session

#: How long a token may wait between the dashboard and the WebSocket's first message.
TOKEN_SECONDS = 60
SALT = "pamcore.terminal-token"


@dataclass(frozen=True)
class TokenUse:
    """What a token is for: how long it lives, its signing salt (a token made for one use
    never verifies for another), and the words its refusals use."""

    name: str
    seconds: int
    salt: str
    again: str


TERMINAL = TokenUse(
    "terminal token", TOKEN_SECONDS, SALT, "open the terminal again from the dashboard"
)


@dataclass(frozen=True)
class TerminalPass:
    """What a redeemed token lets the listener try: this user, session and resource."""

    user_id: int
    session_id: int
    resource_id: int
    resource_name: str


def instance_secret(core: Pamcore) -> str | None:
    """The instance's secret key (written by ``pamcore init``), ``None`` without one."""
    path = core.config.secret_key_path
    if path is None or not path.exists():
        return None
    return path.read_text().strip()


def terminal_resource(
    core: Pamcore, db: Session, user: User, session_id: int, resource_name: str, protocol: str
) -> Resource:
    """The resource of ``user``'s own Available session a terminal may open over
    ``protocol``; raises NotFound or PolicyDenied (one sentence)."""
    session = own_connectable_session(core, db, user, session_id)
    if session.ends_at is not None and session.ends_at <= core.now():
        raise PolicyDenied(f"session #{session_id} has reached its end time")
    for resource in session.resources:
        if resource.name.lower() == resource_name.lower() and resource.port_for(protocol):
            return resource
    raise NotFound(f"session #{session_id} has no {protocol} resource {resource_name}")


def issue_terminal_token(
    core: Pamcore,
    db: Session,
    user: User,
    session_id: int,
    resource_name: str,
    protocol: str,
    secret: str,
    use: TokenUse = TERMINAL,
) -> str:
    """A single-use token, valid for ``use.seconds``, for the session's requester."""
    resource = terminal_resource(core, db, user, session_id, resource_name, protocol)
    expires = core.now() + dt.timedelta(seconds=use.seconds)
    payload = {
        "u": user.id,
        "s": session_id,
        "r": resource.id,
        "p": protocol,
        "x": int(expires.timestamp()),
        "n": secrets.token_urlsafe(16),
    }
    return str(URLSafeSerializer(secret, salt=use.salt).dumps(payload))


def redeem_terminal_token(
    core: Pamcore,
    db: Session,
    token: str,
    protocol: str,
    secret: str,
    use: TokenUse = TERMINAL,
) -> TerminalPass:
    """Check the signature, the protocol, the expiry and that the token is unused; raises
    AuthenticationFailed with a sentence for the user's client."""
    what, again = use.name, use.again
    try:
        data = URLSafeSerializer(secret, salt=use.salt).loads(token)
    except BadSignature:
        raise AuthenticationFailed(f"the {what} is not valid; {again}") from None
    if not isinstance(data, dict) or data.get("p") != protocol:
        raise AuthenticationFailed(f"the {what} is not for {protocol}; {again}")
    if int(core.now().timestamp()) > int(data["x"]):
        raise AuthenticationFailed(f"the {what} expired; {again}")
    expires = dt.datetime.fromtimestamp(int(data["x"]), dt.UTC)
    if not single_use.spend(core, use.salt, str(data["n"]), expires):
        raise AuthenticationFailed(f"the {what} was already used; {again}")
    resource = db.get(Resource, int(data["r"]))
    if resource is None:
        raise NotFound("the resource of this terminal no longer exists")
    return TerminalPass(int(data["u"]), int(data["s"]), resource.id, resource.name)
