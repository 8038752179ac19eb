"""Append-only, hash-chained audit log.

Each event's hash is SHA-256 over its canonical JSON (id, time, actor, action, target,
session, details) and the previous event's hash. ``audit_head`` holds the tip; appends lock
it (``SELECT ... FOR UPDATE`` on PostgreSQL, the write lock on SQLite), so the chain never
forks. :func:`verify_chain` finds an edited row (its hash no longer matches), a deleted or
inserted row (the next row's ``prev_hash`` breaks), and a deleted tail (the head disagrees).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pamcore.model import AuditEvent, AuditHead

if TYPE_CHECKING:
    from pamcore.plugins import Hooks

GENESIS = "0" * 64
#: Keys never accepted in audit details, whatever a caller passes (defence in depth).
FORBIDDEN_DETAIL_KEYS = frozenset({"password", "secret", "private_key", "passphrase", "token"})


def _canonical(event: AuditEvent) -> bytes:
    body = {
        "id": event.id,
        "at": event.at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "actor": event.actor,
        "action": event.action,
        "target": event.target,
        "session_id": event.session_id,
        "details": event.details,
        "prev": event.prev_hash,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def compute_hash(event: AuditEvent) -> str:
    return hashlib.sha256(_canonical(event)).hexdigest()


def append(
    db: Session,
    *,
    actor: str,
    action: str,
    at: dt.datetime,
    target: str = "",
    session_id: int | None = None,
    details: dict[str, Any] | None = None,
    hooks: Hooks | None = None,
) -> AuditEvent:
    """Append one event in the caller's unit of work (it commits with the change it records)."""
    details = dict(details or {})
    leaked = FORBIDDEN_DETAIL_KEYS & {k.lower() for k in details}
    if leaked:
        raise ValueError(f"audit details may not carry {sorted(leaked)}")
    head = db.scalar(select(AuditHead).where(AuditHead.id == 1).with_for_update())
    if head is None:
        head = AuditHead(id=1, last_id=0, last_hash=GENESIS, count=0)
        db.add(head)
    event = AuditEvent(
        id=head.last_id + 1,
        at=at,
        actor=actor,
        action=action,
        target=target,
        session_id=session_id,
        details=details,
        prev_hash=head.last_hash,
    )
    event.hash = compute_hash(event)
    db.add(event)
    head.last_id, head.last_hash, head.count = event.id, event.hash, head.count + 1
    db.flush()
    if hooks is not None:
        hooks.audit_event(event)
    return event


@dataclass(frozen=True)
class ChainProblem:
    event_id: int | None
    problem: str

    def __str__(self) -> str:
        where = f"event {self.event_id}" if self.event_id is not None else "chain"
        return f"{where}: {self.problem}"


def verify_chain(db: Session, batch: int = 5000) -> tuple[int, list[ChainProblem]]:
    """Walk the whole chain; returns (events checked, problems). Empty problems = intact."""
    problems: list[ChainProblem] = []
    prev_hash, prev_id, checked = GENESIS, 0, 0
    last_seen = 0
    while True:
        rows = db.scalars(
            select(AuditEvent).where(AuditEvent.id > last_seen).order_by(AuditEvent.id).limit(batch)
        ).all()
        if not rows:
            break
        for event in rows:
            checked += 1
            if event.id != prev_id + 1:
                missing = (
                    f"{prev_id + 1}"
                    if event.id == prev_id + 2
                    else (f"{prev_id + 1}-{event.id - 1}")
                )
                problems.append(ChainProblem(event.id, f"event(s) {missing} deleted"))
            elif event.prev_hash != prev_hash:
                problems.append(
                    ChainProblem(event.id, "previous-hash link broken (row inserted or replaced)")
                )
            if compute_hash(event) != event.hash:
                problems.append(ChainProblem(event.id, f"content edited (action '{event.action}')"))
            prev_hash, prev_id = event.hash, event.id
        last_seen = rows[-1].id
    head = db.get(AuditHead, 1)
    if head is not None:
        if head.last_id > prev_id:
            problems.append(
                ChainProblem(None, f"events {prev_id + 1}-{head.last_id} deleted from the end")
            )
        elif head.last_id == prev_id and head.last_hash != prev_hash:
            problems.append(ChainProblem(prev_id, "last event does not match the chain head"))
        elif head.last_id < prev_id:
            problems.append(ChainProblem(head.last_id + 1, "events appended outside pamcore"))
    elif checked:
        problems.append(ChainProblem(None, "chain head missing"))
    return checked, problems


def count_events(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(AuditEvent)) or 0
