"""The hooks: directory sign-in answers before the local password (``pamcore_authenticate``
is firstresult and the local one runs last), and the ``pamcore ldap`` commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from sqlalchemy.orm import Session

from pamcore import hookimpl
from pamcore.core import Pamcore
from pamcore.registry import AuthResult
from pamcore_ldap.cli import ldap_group
from pamcore_ldap.settings import ldap_settings
from pamcore_ldap.signin import sign_in


@hookimpl
def pamcore_authenticate(
    core: Pamcore, db: Session, username: str, password: str, factors: dict[str, Any]
) -> AuthResult | None:
    settings = ldap_settings(core.config)
    return None if settings is None else sign_in(core, db, settings, username, password)


@hookimpl
def pamcore_register_commands(register: Callable[[click.Command], None]) -> None:
    register(ldap_group)
