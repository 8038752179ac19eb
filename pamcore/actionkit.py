"""What a plugin's pre- and post-session actions use (``pamcore_register_actions``) beyond
their :class:`~pamcore.registry.ActionContext`: a credential by name, its secrets from the
vault, a rotated secret stored with its audit event, and what an earlier action of the
session recorded. Each call opens its own unit: a runner holds no transaction while it
works on the network."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from pamcore.core import Pamcore
from pamcore.errors import NotFound
from pamcore.model import AuditEvent, Credential
from pamcore.passwords import generate_password
from pamcore.registry import ActionContext
from pamcore.services.actions import ACTOR
from pamcore.services.inventory import get_credential as find_credential
from pamcore.vault import Revealed

__all__ = [
    "ACTOR",
    "audit_details",
    "find_credential",
    "generate_password",
    "reveal_credential",
    "store_new_secret",
]


def reveal_credential(core: Pamcore, credential_id: int) -> tuple[Revealed | None, Revealed | None]:
    """The credential's password and private key from the vault (``None`` for one it has
    not got)."""
    with core.reader() as db:
        credential = _credential(db.get(Credential, credential_id), credential_id)
        vault = core.vault
        password = vault.reveal(credential.password_secret) if credential.password_secret else None
        key = vault.reveal(credential.private_key_secret) if credential.private_key_secret else None
    return password, key


def store_new_secret(ctx: ActionContext, credential_id: int, secret: str) -> None:
    """Vault ``secret`` as the credential's password once the target took it, with its
    ``credential.rotated`` event in the same unit, so the audit trail names every secret
    the vault holds."""
    core = ctx.core
    with core.unit() as db:
        credential = _credential(db.get(Credential, credential_id), credential_id)
        if credential.password_secret is None:
            credential.password_secret = core.vault.store(db, secret)
        else:
            core.vault.replace(credential.password_secret, secret, core.now())
        credential.rotated_at = ctx.now
        core.audit(
            db,
            ACTOR,
            "credential.rotated",
            target=ctx.resource.name,
            session_id=ctx.session.id,
            credential=credential.name,
        )


def audit_details(ctx: ActionContext, action: str) -> list[dict[str, Any]]:
    """The details of the ``action`` events this session's actions recorded on this
    resource (``ctx.audit``), newest first: what one action leaves for a later one."""
    with ctx.core.reader() as db:
        return list(
            db.scalars(
                select(AuditEvent.details)
                .where(
                    AuditEvent.session_id == ctx.session.id,
                    AuditEvent.action == action,
                    AuditEvent.actor == ACTOR,
                    AuditEvent.target == ctx.resource.name,
                )
                .order_by(AuditEvent.id.desc())
            )
        )


def _credential(found: Credential | None, credential_id: int) -> Credential:
    if found is None:
        raise NotFound(f"credential #{credential_id} no longer exists")
    return found
