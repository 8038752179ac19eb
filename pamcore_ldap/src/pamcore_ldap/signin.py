"""A sign-in checked against the directory, and the refresh a sign-in or a sync applies.

Local users (the break-glass admin among them) are left to the local password without
asking the directory, so they sign in while it is down. What a directory answer changes in
pamcore is decided by the core (:mod:`pamcore.identitykit`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.errors import NotFound, PamError
from pamcore.identitykit import (
    DirectoryAccount,
    provision_directory_user,
    retire_directory_user,
    user_source,
)
from pamcore.model import User
from pamcore.registry import AuthResult
from pamcore_ldap.directory import Directory, DirectoryUnavailable, Person, connect
from pamcore_ldap.settings import PLUGIN, LdapSettings

WRONG = "wrong username or password"
DISABLED = "this account is disabled in the directory"
GONE = "this account is no longer in the directory"


def sign_in(
    core: Pamcore, db: Session, settings: LdapSettings, username: str, password: str
) -> AuthResult | None:
    """The answer to ``pamcore_authenticate``: ``None`` for users that are not the
    directory's (local ones, and names the directory does not know either)."""
    claimed = username.strip().lower()
    if user_source(db, claimed) not in (None, PLUGIN):
        return None
    try:
        with directory_session(core, db, settings) as directory:
            person = directory.find(claimed)
            verdict = _verdict(core, db, claimed, person)
            if verdict is not None or person is None:
                return verdict
            if not directory.check_password(person.dn, password):
                return AuthResult(False, reason=WRONG)
        user = refresh(core, db, settings, claimed, person)
    except DirectoryUnavailable as exc:
        return AuthResult(False, reason=str(exc))
    except PamError as exc:
        return AuthResult(False, reason=str(exc))
    if not user.is_active:
        return AuthResult(False, user=user, reason="this account is disabled")
    return AuthResult(True, user=user)


def _verdict(core: Pamcore, db: Session, username: str, person: Person | None) -> AuthResult | None:
    """A refusal for a person the directory disabled or no longer has (retiring their
    pamcore user), or ``None`` to go on."""
    if person is not None and not person.disabled:
        return None
    user = retire_directory_user(core, db, PLUGIN, username, GONE if person is None else DISABLED)
    if person is None:
        return None if user is None else AuthResult(False, user=user, reason=WRONG)
    return AuthResult(False, user=user, reason=DISABLED)


def refresh(
    core: Pamcore, db: Session, settings: LdapSettings, username: str, person: Person
) -> User:
    """Create or refresh the pamcore user for ``person``, their groups mapped."""
    account = DirectoryAccount(
        username=username,
        display_name=person.display_name,
        email=person.email,
        role=settings.role_for(person.groups),
        groups=settings.groups_for(person.groups),
    )
    return provision_directory_user(core, db, PLUGIN, account, settings.managed_groups)


def sync_user(
    core: Pamcore, db: Session, directory: Directory, settings: LdapSettings, username: str
) -> str:
    """Check one directory user again, as a sign-in would but without a password: the
    outcome in a word (``refreshed``, ``disabled``, ``gone``)."""
    person = directory.find(username)
    if person is None or person.disabled:
        _verdict(core, db, username, person)
        return "gone" if person is None else "disabled"
    refresh(core, db, settings, username, person)
    return "refreshed"


@contextmanager
def directory_session(core: Pamcore, db: Session, settings: LdapSettings) -> Iterator[Directory]:
    """A directory connection bound with the service password from the vault."""
    with connect(settings, service_password(core, db, settings)) as directory:
        yield directory


def service_password(core: Pamcore, db: Session, settings: LdapSettings) -> str:
    try:
        secret = core.vault.named(db, settings.service_password_secret)
    except NotFound:
        raise DirectoryUnavailable(
            f"LDAP sign-in is not set up: the vault holds no secret "
            f"'{settings.service_password_secret}' (pamcore ldap set-service-password)"
        ) from None
    return core.vault.reveal(secret)


def describe(person: Person, settings: LdapSettings) -> dict[str, Any]:
    """What ``pamcore ldap test`` shows about a person."""
    return {
        "dn": person.dn,
        "disabled": person.disabled,
        "groups": person.groups,
        "role": settings.role_for(person.groups).value,
        "pamcore_groups": list(settings.groups_for(person.groups)),
    }
