"""The scheduler: due sessions → provisioning → available; end reached → expired;
approval escalations; recovery of work a crashed worker left behind.

Safe with several workers: each session is *claimed* in a short transaction (row locks with
``SKIP LOCKED`` on PostgreSQL, the write lock on SQLite, and the session's version column
everywhere), then its actions run under the claim's heartbeat; a claim whose owner died is
taken over and resumed after its last finished action (:mod:`pamcore.services.claims`). It
catches up after downtime, because it selects by time ("start <= now"), not by events it
might have missed.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from pamcore import metrics
from pamcore.clock import format_utc
from pamcore.core import Pamcore
from pamcore.errors import ActionFailed
from pamcore.lifecycle import Status, transition
from pamcore.model import ActionPhase, Activity, ActivitySession
from pamcore.services.actions import (
    ActionRecords,
    assign_login_account,
    finished_actions,
    run_actions,
)
from pamcore.services.approvals import escalate_if_due
from pamcore.services.claims import abandoned, heartbeat, release, stake
from pamcore.services.common import worker_name
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
                stake(session, worker, now)
                claimed.append(session.id)
    except StaleDataError:
        log.info("another worker claimed the same sessions first; retrying next tick")
        return []
    return claimed


def _activate_due(core: Pamcore, worker: str, report: TickReport, batch: int) -> None:
    """Claim what is due, then prepare all of it in one transaction, run the pre-session
    actions outside any transaction (several sessions at once: they wait on the network),
    and settle all of it in one transaction. One commit per step, not per session, is what
    lets a worker keep up with thousands of sessions starting together (bench/core.py)."""
    now = core.now()
    fresh = select(ActivitySession).where(
        ActivitySession.status == Status.SCHEDULED.value,
        ActivitySession.scheduled_start <= now,
    )
    stale = select(ActivitySession).where(
        ActivitySession.status == Status.PROVISIONING.value, abandoned(core)
    )
    ids = _claim(core, worker, fresh, batch, Status.PROVISIONING)
    ids += _claim(core, worker, stale, batch, None)
    if not ids:
        return
    prepared = _prepare(core, worker, ids, report)
    pending = deque(p for p in prepared if p.has_actions and p.failure is None)
    with heartbeat(core, worker), ActionRecords(core) as records:
        threads = min(PROVISION_THREADS, len(pending))
        if threads == 1:
            _provision(core, pending, records)
        elif threads:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                for future in [
                    pool.submit(_provision, core, pending, records) for _ in range(threads)
                ]:
                    future.result()
    _settle(core, worker, prepared, report)


@dataclass
class _Provisioning:
    """One claimed session on its way to available (or failed)."""

    session_id: int
    password: str | None
    has_actions: bool
    #: (resource id, action id) of the actions a previous owner of the claim finished.
    finished: set[tuple[int, int]] = field(default_factory=set)
    failure: str | None = None
    cleanup: list[str] = field(default_factory=list)


def _window_end(session: ActivitySession) -> dt.datetime:
    return session.scheduled_start + dt.timedelta(minutes=session.profile.max_duration_minutes)


def _prepare(core: Pamcore, worker: str, ids: list[int], report: TickReport) -> list[_Provisioning]:
    """Missed-window check and login account for every claimed session, in one unit."""
    prepared: list[_Provisioning] = []
    with core.unit() as db:
        now = core.now()
        for session in db.scalars(
            select(ActivitySession)
            .where(ActivitySession.id.in_(ids), ActivitySession.claimed_by == worker)
            .order_by(ActivitySession.id)
        ):
            if _window_end(session) <= now:
                # Downtime swallowed the whole approved window: never start it late.
                transition(session, Status.CANCELED)
                session.finished_at = now
                session.outcome_reason = (
                    f"its window ended at {format_utc(_window_end(session), now)} before the "
                    f"scheduler could start it"
                )
                release(session)
                core.audit(
                    db,
                    ACTOR,
                    "session.missed",
                    session_id=session.id,
                    reason=session.outcome_reason,
                )
                report.missed.append(session.id)
                continue
            core.hooks.on_session_due(session)
            item = _Provisioning(
                session.id, None, bool(session.activity.actions_for(ActionPhase.PRE))
            )
            try:
                if not session.login_account:
                    item.password = assign_login_account(core, db, session)
                elif session.login_secret is not None:  # a recovered claim: the account exists
                    item.password = str(core.vault.reveal(session.login_secret))
            except ActionFailed as exc:
                item.failure = str(exc)
            prepared.append(item)
        finished = finished_actions(db, [item.session_id for item in prepared])
        for item in prepared:
            item.finished = finished.get(item.session_id, set())
    return prepared


def _provision(core: Pamcore, pending: deque[_Provisioning], records: ActionRecords) -> None:
    """Run the pre-session actions of the sessions taken from ``pending`` (shared by the
    provisioning threads) one after the other, in one read unit: its identity map loads each
    activity and its actions once, not once per session."""
    activities: set[Activity] = set()  # held here: the identity map holds rows weakly
    with core.reader() as db:
        while pending:
            try:
                item = pending.popleft()
            except IndexError:  # another thread took the last one
                return
            session = db.get(ActivitySession, item.session_id)
            assert session is not None
            activities.add(session.activity)
            try:
                run_actions(
                    core,
                    session,
                    ActionPhase.PRE,
                    item.password,
                    records=records,
                    finished=item.finished,
                )
            except ActionFailed as exc:
                item.failure = str(exc)
                item.cleanup = run_actions(
                    core,
                    session,
                    ActionPhase.POST,
                    item.password,
                    best_effort=True,
                    records=records,
                    finished=item.finished,
                )


def _settle(core: Pamcore, worker: str, prepared: list[_Provisioning], report: TickReport) -> None:
    available: list[ActivitySession] = []
    with core.unit() as db:
        now = core.now()
        ids = [item.session_id for item in prepared]
        sessions = {
            s.id: s for s in db.scalars(select(ActivitySession).where(ActivitySession.id.in_(ids)))
        }
        for item in prepared:
            session = sessions.get(item.session_id)
            if session is None or session.claimed_by != worker:
                continue  # another worker took over an abandoned claim; its result stands
            release(session)
            if item.failure is not None:
                transition(session, Status.FAILED)
                session.finished_at = now
                session.outcome_reason = item.failure
                core.audit(
                    db,
                    ACTOR,
                    "session.failed",
                    session_id=session.id,
                    reason=item.failure,
                    cleanup_failures=item.cleanup,
                )
                report.failed.append(session.id)
                continue
            transition(session, Status.AVAILABLE)
            metrics.SCHEDULER_LAG.observe((now - session.scheduled_start).total_seconds())
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
            available.append(session)
        db.flush()
        for session in available:
            core.hooks.on_session_available(session)


def _expire(core: Pamcore, worker: str, report: TickReport, batch: int) -> None:
    now = core.now()
    ended = select(ActivitySession).where(
        ActivitySession.status.in_([Status.AVAILABLE.value, Status.ACTIVE.value]),
        ActivitySession.ends_at <= now,
    )
    stale = select(ActivitySession).where(
        ActivitySession.status == Status.ENDING.value, abandoned(core)
    )
    ids = _claim(core, worker, ended, batch, None) + _claim(core, worker, stale, batch, None)
    for session_id in ids:
        with core.unit() as db:
            session = db.get(ActivitySession, session_id)
            if session is None or session.claimed_by != worker:
                continue
            if session.status != Status.ENDING:  # end time reached: begin the ending here
                reason = f"end time {format_utc(session.ends_at or now, now)} reached"
                begin_ending(core, db, session, Status.EXPIRED, reason, ACTOR, worker)
        outcome = complete_ending(core, session_id, worker, ACTOR)
        if outcome == Status.FAILED:
            report.failed.append(session_id)
        elif outcome is not None:
            report.expired.append(session_id)
