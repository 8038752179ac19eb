"""Reading the audit log: filtered listings and the chain check, for administrators and
auditors only (the log says who saw which password when)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from pamcore.audit import Anchor, ChainProblem, current_anchor, verify_chain
from pamcore.core import Pamcore
from pamcore.errors import ValidationError
from pamcore.model import AuditEvent
from pamcore.services.common import Actor, require_auditor

MAX_LIMIT = 100_000


@dataclass(frozen=True)
class AuditFilter:
    """Empty fields do not filter; ``action`` is a prefix (``session.`` or ``password``)."""

    actor: str = ""
    action: str = ""
    session_id: int | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: int = 200


def list_events(db: Session, actor: Actor, wanted: AuditFilter) -> list[AuditEvent]:
    """The newest matching events first."""
    require_auditor(actor)
    if not 1 <= wanted.limit <= MAX_LIMIT:
        raise ValidationError("limit", f"1-{MAX_LIMIT}")
    if wanted.since and wanted.until and wanted.since > wanted.until:
        raise ValidationError("until", "must not be before 'since'")
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(wanted.limit)
    if wanted.actor.strip():
        query = query.where(AuditEvent.actor == wanted.actor.strip())
    if wanted.action.strip():
        query = query.where(AuditEvent.action.startswith(wanted.action.strip(), autoescape=True))
    if wanted.session_id is not None:
        query = query.where(AuditEvent.session_id == wanted.session_id)
    if wanted.since is not None:
        query = query.where(AuditEvent.at >= wanted.since)
    if wanted.until is not None:
        query = query.where(AuditEvent.at < wanted.until)
    return list(db.scalars(query))


def check_chain(
    core: Pamcore, db: Session, actor: Actor, anchor: Anchor | None = None
) -> tuple[int, list[ChainProblem]]:
    """(events checked, problems) of :func:`pamcore.audit.verify_chain`, each event checked
    under the audit key it names; with ``anchor``, also that the anchored event is unchanged."""
    require_auditor(actor)
    return verify_chain(db, core.audit_keys.keyring, anchor)


def take_anchor(core: Pamcore, db: Session, actor: Actor) -> Anchor:
    """The current head, for the operator to keep outside pamcore."""
    require_auditor(actor)
    return current_anchor(db, core.audit_keys.keyring)
