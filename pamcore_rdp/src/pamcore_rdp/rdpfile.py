"""The ``.rdp`` file behind the Connection icon and its one-time routing token.

The dashboard signs a token naming the user, the session and the resource (the core's
connection-token service, :mod:`pamcore.services.terminal_tokens`, with the ``.rdp`` file's
own :data:`RDP_FILE` use: ten minutes, its own salt) and writes it as ``loadbalanceinfo``.
mstsc and FreeRDP send that value verbatim as the routing token line of their X.224
Connection Request (MS-RDPBCGR 2.2.1.1, docs/design/rdp.md §4.4, §7), which is all the listener sees
before TLS; Phase A redeems it once.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.model import ActivitySession, User
from pamcore.proxy import TokenUse

PROTOCOL = "rdp"
MEDIA_TYPE = "application/x-rdp"
#: Long enough to download the file and open it, short enough that an old file is useless.
FILE_TOKEN_SECONDS = 600
RDP_FILE = TokenUse(
    "routing token of this .rdp file",
    FILE_TOKEN_SECONDS,
    "pamcore.rdp-file",
    "download the .rdp file again from the dashboard",
)
#: The form RD Connection Broker writes; clients pass it through unchanged.
ROUTING_PREFIX = "tsv://MS Terminal Services Plugin.1."


def rdp_file(
    proxy_host: str, login: str, port: int, token: str | None = None, *, clipboard: bool = False
) -> bytes:
    """The ``.rdp`` file mstsc / RDCMan / FreeRDP open.

    CredSSP is switched off so the client does not ask for a password up front: the proxy
    shows its inline prompt and injects the session's credential on the target side. The
    user name is the DirectConnect login (``alice+Windows-Admin+win01``), so the file also
    works once the token is spent: the proxy then routes on the name. The clipboard is
    shared only when ``clipboard`` says so (:func:`clipboard_allowed`).
    """
    settings = [
        f"full address:s:{proxy_host}:{port}",
        f"username:s:{login}",
        "enablecredsspsupport:i:0",
        "authentication level:i:2",
        "prompt for credentials:i:0",
        "negotiate security layer:i:1",
        "screen mode id:i:2",
        "use multimon:i:0",
        f"redirectclipboard:i:{int(clipboard)}",
        "audiomode:i:0",
        "autoreconnection enabled:i:1",
    ]
    if token is not None:
        settings.append(f"loadbalanceinfo:s:{ROUTING_PREFIX}{token}")
    return ("\r\n".join(settings) + "\r\n").encode("utf-8")


def clipboard_allowed(session: ActivitySession) -> bool:
    """Whether the session's connection profile lets the client share its clipboard; off
    unless it says so (a session or profile not stored yet has not said so)."""
    return bool(session.profile and session.profile.clipboard_redirection)


def issue_file_token(
    core: Pamcore, db: Session, user: User, session_id: int, resource_name: str, secret: str
) -> str:
    """A token for the requester's Available session; raises PamError (NotFound,
    PolicyDenied) when the session cannot be connected to over RDP."""
    # Imported here: the listener reads this module too, and webkit brings in the dashboard.
    from pamcore.webkit import issue_token

    return issue_token(core, db, user, session_id, resource_name, PROTOCOL, secret, RDP_FILE)


def file_token(routing_token: str) -> str | None:
    """The signed token inside a Connection Request's routing token line, or ``None`` when
    the line is something else (a redirect token, another broker's token)."""
    if not routing_token.startswith(ROUTING_PREFIX):
        return None
    return routing_token[len(ROUTING_PREFIX) :].strip() or None
