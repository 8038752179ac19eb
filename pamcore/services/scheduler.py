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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

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
from pamcore.services.common import CLAIM_TTL, worker_name
from pamcore.services.ending import begin_ending, complete_ending

log = logging.getLogger(__name__)

#: Sessions provisioned at once by one worker (their actions mostly wait on the network).
PROVISION_THREADS = 8
ACTOR = "system:scheduler"


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
    if len(ids) <= 1:
        for session_id in ids:
            _provision(core, worker, session_id, report)
        return
    # Pre-session actions wait on the network; run several sessions' at once.
    with ThreadPoolExecutor(max_workers=min(PROVISION_THREADS, len(ids))) as pool:
        for future in [pool.submit(_provision, core, worker, sid, report) for sid in ids]:
            future.result()


def _provision(core: Pamcore, worker: str, session_id: int, report: TickReport) -> None:
    """Prepare, run the pre-session actions, settle: three steps, so the actions (which may
    take seconds on the network) run outside any write transaction and never hold the
    SQLite write lock or PostgreSQL row locks while they wait."""
    password = _prepare(core, worker, session_id, report)
    if password is False:
        return
    failure: str | None = None
    cleanup: list[str] = []
    with core.reader() as db:
        session = db.get(ActivitySession, session_id)
        assert session is not None
        try:
            run_actions(core, session, ActionPhase.PRE, password)
        except ActionFailed as exc:
            failure = str(exc)
            cleanup = run_actions(core, session, ActionPhase.POST, password, best_effort=True)
    _settle(core, worker, session_id, failure, cleanup, report)


def _prepare(
    core: Pamcore, worker: str, session_id: int, report: TickReport
) -> str | Literal[False] | None:
    """Missed-window check and login account; returns the ephemeral password (or ``None``
    for a managed credential), or ``False`` when there is nothing to run."""
    with core.unit() as db:
        session = db.get(ActivitySession, session_id)
        if session is None or session.claimed_by != worker:
            return False
        now = core.now()
        if _window_end(session) <= now:
            # Downtime swallowed the whole approved window: never start it late.
            transition(session, Status.CANCELED)
            session.finished_at = now
            session.outcome_reason = (
                f"its window ended at {format_utc(_window_end(session))} before the "
                f"scheduler could start it"
            )
            session.claimed_by = session.claim_expires_at = None
            core.audit(
                db, ACTOR, "session.missed", session_id=session.id, reason=session.outcome_reason
            )
            report.missed.append(session.id)
            return False
        core.hooks.on_session_due(session)
        if not session.login_account:
            password = assign_login_account(core, db, session)
        elif session.login_secret is not None:  # a recovered claim: the account exists
            password = core.vault.reveal(session.login_secret)
        else:
            password = None
        return str(password) if password is not None else None


def _window_end(session: ActivitySession) -> dt.datetime:
    return session.scheduled_start + dt.timedelta(minutes=session.profile.max_duration_minutes)


def _settle(
    core: Pamcore,
    worker: str,
    session_id: int,
    failure: str | None,
    cleanup: list[str],
    report: TickReport,
) -> None:
    with core.unit() as db:
        session = db.get(ActivitySession, session_id)
        if session is None or session.claimed_by != worker:
            return  # another worker took over an expired claim; its result stands
        now = core.now()
        session.claimed_by = session.claim_expires_at = None
        if failure is not None:
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
            return
        transition(session, Status.AVAILABLE)
        session.started_at = now
        session.ends_at = _window_end(session)
        core.audit(
            db,
            ACTOR,
            "session.available",
            session_id=session.id,
            account=session.login_account,
            ends_at=session.ends_at.isoformat(),
            lag_seconds=round((now - session.scheduled_start).total_seconds(), 3),
        )
        report.activated.append(session.id)
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
            if session.status != Status.ENDING:  # end time reached: begin the ending here
                reason = f"end time {format_utc(session.ends_at or now)} reached"
                begin_ending(core, db, session, Status.EXPIRED, reason, ACTOR, worker)
        outcome = complete_ending(core, session_id, worker, ACTOR)
        if outcome == Status.FAILED:
            report.failed.append(session_id)
        elif outcome is not None:
            report.expired.append(session_id)
