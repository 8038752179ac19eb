"""Ending a session in two steps: ``ending`` is recorded first (every node's proxies are
told to close its connections once it commits), then the post-session actions run outside
any write transaction (they may wait seconds on the network), and the outcome is settled.

Whoever begins an ending claims the session; if that process dies, its heartbeat stops and
the scheduler completes the ending, so an ephemeral account is never left behind.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.lifecycle import Status, transition
from pamcore.model import ActionPhase, ActivitySession
from pamcore.services.actions import run_actions
from pamcore.services.claims import heartbeat, release, stake
from pamcore.services.connections import close_session_connections


def begin_ending(
    core: Pamcore,
    db: Session,
    session: ActivitySession,
    outcome: Status,
    reason: str,
    actor: str,
    worker: str,
) -> None:
    """Move to ``ending`` with the outcome it will settle on, claimed by ``worker``."""
    transition(session, Status.ENDING)
    session.pending_outcome = outcome
    session.outcome_reason = reason
    stake(session, worker, core.now())
    core.audit(
        db, actor, "session.ending", session_id=session.id, outcome=outcome.value, reason=reason
    )
    db.flush()
    core.session_changes.announce(db, session.id, outcome.value)


def complete_ending(core: Pamcore, session_id: int, worker: str, actor: str) -> Status | None:
    """Run the post-session actions and settle; returns the final status, or ``None`` when
    the session is not ``ending`` under ``worker``'s claim (someone else finishes it)."""
    with core.reader() as db:
        session = db.get(ActivitySession, session_id)
        if session is None or session.status != Status.ENDING or session.claimed_by != worker:
            return None
        secret = session.login_secret
        password = core.vault.reveal(secret) if secret else None
        # Every removal is attempted even if one fails: one stuck step must not leave the rest.
        with heartbeat(core, worker):
            failures = run_actions(core, session, ActionPhase.POST, password, best_effort=True)
    with core.unit() as db:
        session = db.get(ActivitySession, session_id)
        if session is None or session.status != Status.ENDING or session.claimed_by != worker:
            return None
        outcome = Status(session.pending_outcome or Status.ENDED)
        reason = session.outcome_reason
        if failures:
            outcome, reason = Status.FAILED, "; ".join(failures)
        transition(session, outcome)
        # The proxies were told to close them (begin_ending's change); one may not have yet.
        close_session_connections(core, db, session, f"session {outcome.value}")
        session.finished_at = core.now()
        session.outcome_reason = reason
        session.pending_outcome = None
        release(session)
        if session.login_secret is not None:
            # The ephemeral account is gone; its password must not outlive it.
            doomed, session.login_secret = session.login_secret, None
            db.delete(doomed)
        core.audit(
            db,
            actor,
            f"session.{outcome.value}",
            session_id=session.id,
            reason=reason,
            account=session.login_account,
        )
        return outcome
