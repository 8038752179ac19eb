"""What a plugin's dashboard pages use (``pamcore_register_blueprints``): the app's core
and the signed-in user, the dashboard's Content Security Policy, and connection tokens for
the requester's own Available session. Who may have a token, and for which resource, is
decided in :mod:`pamcore.services.terminal_tokens` and :mod:`pamcore.services.access`;
the views only translate."""

from __future__ import annotations

from flask import current_app

from pamcore.services.access import own_connectable_session
from pamcore.services.terminal_tokens import TOKEN_SECONDS
from pamcore.services.terminal_tokens import issue_terminal_token as issue_token
from pamcore.services.terminal_tokens import terminal_resource as token_resource
from pamcore.web.app import CSP
from pamcore.web.context import acting_user, current_core

__all__ = [
    "CSP",
    "TOKEN_SECONDS",
    "acting_user",
    "current_core",
    "issue_token",
    "own_connectable_session",
    "token_resource",
    "token_secret",
]


def token_secret() -> str:
    """The key this app signs connection tokens with; the listeners verify them with the
    instance's secret key, which the app uses when ``pamcore init`` wrote one."""
    return str(current_app.config["SECRET_KEY"])
