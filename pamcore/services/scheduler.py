"""The scheduler: due sessions → provisioning → available; end reached → expired;
approval escalations; recovery of work a crashed worker left behind.

Safe with several workers: each session is *claimed* in a short transaction (row locks with
``SKIP LOCKED`` on PostgreSQL, the write lock on SQLite, and the session's version column
everywhere), then its actions run. It catches up after downtime, because it selects by time
("start <= now"), not by events it might have missed.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from pamcore.clock import format_utc
from pamcore.core import Pamcore
from pamcore.errors import ActionFailed
from pamcore.lifecycle import Status, transition
from pamcore.model import ActionPhase, ActivitySession
from pamcore.services.actions import assign_login_account, run_actions
from pamcore.services.approvals import escalate_if_due
from pamcore.services.sessions import finish_session

log = logging.getLogger(__name__)

#: How long a worker owns a claimed session before another may take it over.
CLAIM_TTL = dt.timedelta(minutes=10)
ACTOR = "system:scheduler"


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class TickReport:
    activated: list[int] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    escalated: list[int] = field(default_factory=list)
    missed: list[int] = field(default_factory=list)

    @property
    def busy(self) -> bool:
        return any((self.activated, self.expired, self.failed, self.escalated, self.missed))


def _due(db: Session, query, core: Pamcore, batch: int) -> list[ActivitySession]:  # type: ignore[no-untyped-def]
    query = query.order_by(ActivitySession.id).limit(batch)
    if core.engine.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=ActivitySession)
    return list(db.scalars(query))


def tick(core: Pamcore, worker: str | None = None, batch: int = 200) -> TickReport:
    """One pass of every scheduler duty; idempotent, so it can run as often as wanted."""
    worker = worker or worker_name()
    report = TickReport()
    _escalate(core, report, batch)
    _activate_due(core, worker, report, batch)
    _expire(core, worker, report, batch)
    return report


def _escalate(core: Pamcore, report: TickReport, batch: int) -> None:
    with core.unit() as db:
        waiting = _due(
            db,
            select(ActivitySession).where(
                ActivitySession.status == Status.WAITING_FOR_APPROVAL.value,
                ActivitySession.escalated_tier < ActivitySession.current_tier,
            ),
            core,
            batch,
        )
        for session in waiting:
            if escalate_if_due(core, db, session):
                report.escalated.append(session.id)


def _claim(core: Pamcore, worker: str, query, batch: int, target: Status | None):  # type: ignore[no-untyped-def]
    """Claim sessions for ``worker`` in one short transaction; returns their ids."""
    now = core.now()
    claimed: list[int] = []
    try:
        with core.unit() as db:
            for session in _due(db, query, core, batch):
                if target is not None:
                    transition(session, target)
                session.claimed_by = worker
                session.claim_expires_at = now + CLAIM_TTL
                claimed.append(session.id)
    except StaleDataError:
        log.info("another worker claimed the same sessions first; retrying next tick")
        return []
    return claimed


def _activate_due(core: Pamcore, worker: str, report: TickReport, batch: int) -> None:
    now = core.now()
    fresh = select(ActivitySession).where(
        ActivitySession.status == Status.SCHEDULED.value,
        ActivitySession.scheduled_start <= now,
    )
    stale = select(ActivitySession).where(
        ActivitySession.status == Status.PROVISIONING.value,
        ActivitySession.claim_expires_at < now,
    )
    ids = _claim(core, worker, fresh, batch, Status.PROVISIONING)
    ids += _claim(core, worker, stale, batch, None)
    for session_id in ids:
        _provision(core, worker, session_id, report)


def _provision(core: Pamcore, worker: str, session_id: int, report: TickReport) -> None:
    """Pre-session actions, then available; a failure cleans up and marks the session failed."""
    with core.unit() as db:
        session = db.get(ActivitySession, session_id)
        if session is None or session.claimed_by != worker:
            return
        now = core.now()
        ends_at = session.scheduled_start + dt.timedelta(
            minutes=session.profile.max_duration_minutes
        )
        if ends_at <= now:
            # Downtime swallowed the whole approved window: never start it late.
            transition(session, Status.CANCELED)
            session.finished_at = now
            session.outcome_reason = (
                f"its window ended at {format_utc(ends_at)} before the scheduler could start it"
            )
            core.audit(
                db, ACTOR, "session.missed", session_id=session.id, reason=session.outcome_reason
            )
            report.missed.append(session.id)
            return
        core.hooks.on_session_due(session)
        failure: str | None = None
        try:
            password = assign_login_account(core, db, session)
            if password is None and session.login_secret is not None:
                password = core.vault.reveal(session.login_secret)
            run_actions(core, session, ActionPhase.PRE, password)
        except ActionFailed as exc:
            failure = str(exc)
            cleanup = run_actions(core, session, ActionPhase.POST, password, best_effort=True)
            transition(session, Status.FAILED)
            session.finished_at = now
            session.outcome_reason = failure
            core.audit(
                db,
                ACTOR,
                "session.failed",
                session_id=session.id,
                reason=failure,
                cleanup_failures=cleanup,
            )
            report.failed.append(session.id)
        if failure is None:
            transition(session, Status.AVAILABLE)
            session.started_at = now
            session.ends_at = ends_at
            core.audit(
                db,
                ACTOR,
                "session.available",
                session_id=session.id,
                account=session.login_account,
                ends_at=ends_at.isoformat(),
                lag_seconds=round((now - session.scheduled_start).total_seconds(), 3),
            )
            report.activated.append(session.id)
        session.claimed_by = session.claim_expires_at = None
        if failure is None:
            db.flush()
            core.hooks.on_session_available(session)


def _expire(core: Pamcore, worker: str, report: TickReport, batch: int) -> None:
    now = core.now()
    ended = select(ActivitySession).where(
        ActivitySession.status.in_([Status.AVAILABLE.value, Status.ACTIVE.value]),
        ActivitySession.ends_at <= now,
    )
    stale = select(ActivitySession).where(
        ActivitySession.status == Status.ENDING.value,
        ActivitySession.claim_expires_at.is_(None) | (ActivitySession.claim_expires_at < now),
    )
    ids = _claim(core, worker, ended, batch, None) + _claim(core, worker, stale, batch, None)
    for session_id in ids:
        with core.unit() as db:
            session = db.get(ActivitySession, session_id)
            if session is None or session.claimed_by != worker:
                continue
            outcome = session.pending_outcome or Status.EXPIRED
            reason = (
                session.outcome_reason
                if session.pending_outcome
                else (f"end time {format_utc(session.ends_at or now)} reached")
            )
            finish_session(core, db, session, Status(outcome), reason, ACTOR)
            (report.expired if Status(session.status) != Status.FAILED else report.failed).append(
                session.id
            )
