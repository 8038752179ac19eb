"""Which web pages may open a browser terminal: only the dashboard's own, under an address
in :attr:`pamcore.config.Config.allowed_origins`. A WebSocket is not bound by the
same-origin policy, so without this check any site a signed-in user visits could open one
(cross-site WebSocket hijacking); the single-use token is what authorises the terminal."""

from __future__ import annotations

from pamcore.config import normalize_origin
from pamcore.core import Pamcore
from pamcore.errors import PolicyDenied

#: Longest page origin kept in the audit log and the server log (it is the client's text).
MAX_ORIGIN = 200


def check_terminal_origin(core: Pamcore, origin: str | None, peer: str, protocol: str) -> None:
    """Pass a page the dashboard serves; otherwise audit ``terminal.origin_refused`` and
    raise PolicyDenied naming the setting an operator changes to let it in."""
    shown = (origin or "").strip()[:MAX_ORIGIN]
    try:
        page = normalize_origin(shown) if shown else None
    except ValueError:
        page = None
    if page is not None and page in core.config.allowed_origins:
        return
    if page is None:
        reason = (
            f"only the dashboard's terminal page may open a terminal, not a request from {shown!r}"
            if shown
            else "only the dashboard's terminal page may open a terminal (no Origin was sent)"
        )
    else:
        reason = (
            f'pages from {page} may not open a terminal: add "{page}" to web_origins '
            "under [pamcore] in pamcore.toml and restart pamcore"
        )
    with core.unit() as db:
        core.audit(db, "-", "terminal.origin_refused", origin=shown, peer=peer, protocol=protocol)
    raise PolicyDenied(reason)
