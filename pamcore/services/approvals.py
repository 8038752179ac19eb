"""Approving and denying sessions: tiers in order, N approvals per tier, eligible approvers
only (from the ``pamcore_approvers`` hook), vetoes (deny wins), one tier per person, and
escalation. :func:`decision_refusal` is the one rule every edge and the queue apply."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.errors import PolicyDenied
from pamcore.lifecycle import Status, transition
from pamcore.model import ActivitySession, Approval, ApprovalTier, Decision, Group, Role, User
from pamcore.services.common import check_text, get_session

MAX_COMMENT = 2000
#: Roles whose holders approve through a group. Groups also grant access, so a requester or
#: an auditor in a tier's group is a member, not an approver; a user named in a tier is both.
APPROVING_ROLES = frozenset({Role.APPROVER, Role.ADMIN})


def group_approvers(group: Group) -> list[User]:
    """The members of ``group`` who may approve through it."""
    return [u for u in group.members if u.role in APPROVING_ROLES]


def tier_approvers(tier: ApprovalTier) -> list[User]:
    """Who approves at ``tier``: its users, and its groups' members holding an approving role."""
    users = {u.id: u for u in tier.users}
    for group in tier.groups:
        users.update({u.id: u for u in group_approvers(group)})
    return list(users.values())


def current_tier(session: ActivitySession) -> ApprovalTier | None:
    return session.profile.tier(session.current_tier)


def approvals_required(tier: ApprovalTier | None) -> int:
    return tier.approvals_required if tier is not None else 1


def escalation_due(session: ActivitySession, now: dt.datetime) -> bool:
    profile = session.profile
    return (
        Status(session.status) == Status.WAITING_FOR_APPROVAL
        and profile.escalation_minutes is not None
        and (profile.escalation_user_id is not None or profile.escalation_group_id is not None)
        and session.tier_started_at is not None
        and session.escalated_tier < session.current_tier
        and now - session.tier_started_at >= dt.timedelta(minutes=profile.escalation_minutes)
    )


def escalate_if_due(core: Pamcore, db: Session, session: ActivitySession) -> bool:
    """Open the current tier to the fallback approver once its wait exceeded the delay."""
    if not escalation_due(session, core.now()):
        return False
    session.escalated_tier = session.current_tier
    tier = current_tier(session)
    fallback = session.profile.escalation_user or session.profile.escalation_group
    core.audit(
        db,
        "system:scheduler",
        "approval.escalated",
        session_id=session.id,
        tier=session.current_tier,
        to=getattr(fallback, "username", None) or getattr(fallback, "name", ""),
    )
    if tier is not None:
        core.hooks.on_approval_escalated(session, tier)
    return True


def is_eligible_approver(user: User, session: ActivitySession) -> bool:
    """For visibility only (may this user look at the request?); decisions use the hooks."""
    if any(a.approver_id == user.id for a in session.approvals):
        return True
    tier = current_tier(session)
    return tier is not None and _in_tier(user, tier)


def approve_session(
    core: Pamcore, db: Session, approver: User, session_id: int, comment: str = ""
) -> ActivitySession:
    return _decide(core, db, approver, session_id, Decision.APPROVED, comment)


def deny_session(
    core: Pamcore, db: Session, approver: User, session_id: int, comment: str = ""
) -> ActivitySession:
    return _decide(core, db, approver, session_id, Decision.DENIED, comment)


def _decide(
    core: Pamcore,
    db: Session,
    approver: User,
    session_id: int,
    decision: Decision,
    comment: str,
) -> ActivitySession:
    session = get_session(db, session_id)
    comment = check_text("comment", comment, MAX_COMMENT)
    if Status(session.status) != Status.WAITING_FOR_APPROVAL:
        raise PolicyDenied(
            f"session #{session.id} is not waiting for approval "
            f"(it is {Status(session.status).label})"
        )
    escalate_if_due(core, db, session)
    tier = current_tier(session)
    verb = "approve" if decision == Decision.APPROVED else "deny"
    refusal = decision_refusal(core, approver, session)
    if refusal:
        raise PolicyDenied(refusal).audited(
            approver.username, f"approval.refused_{verb}", session_id=session.id
        )

    via_escalation = session.escalated_tier >= session.current_tier and (
        tier is not None and not _in_tier(approver, tier)
    )
    approval = Approval(
        session=session,
        tier=session.current_tier,
        approver=approver,
        decision=decision,
        comment=comment,
        via_escalation=via_escalation,
        decided_at=core.now(),
    )
    db.add(approval)
    core.audit(
        db,
        approver.username,
        f"approval.{decision.value}",
        session_id=session.id,
        tier=session.current_tier,
        comment=comment,
        via_escalation=via_escalation,
    )
    if decision == Decision.DENIED:
        transition(session, Status.DENIED)
        session.finished_at = core.now()
        session.outcome_reason = f"denied by {approver.username}" + (
            f": {comment}" if comment else ""
        )
    else:
        _advance(core, session, tier)
    db.flush()
    core.hooks.on_approval_decided(session, approval)
    return session


def decision_refusal(core: Pamcore, approver: User, session: ActivitySession) -> str | None:
    """Why ``approver`` may not decide ``session`` at its current tier, or ``None``: the
    dashboard, the REST API, the CLI and the approvals queue all ask this one question."""
    tier = current_tier(session)
    if approver.id not in {u.id for u in core.hooks.approvers(session, tier)}:
        who = tier.describe_approvers() if tier else "an administrator"
        return (
            f"you are not an approver for tier {session.current_tier} of session "
            f"#{session.id}; it waits for {who}"
        )
    veto = core.hooks.approval_veto(session, approver)
    if veto:
        return veto
    for earlier in session.approvals:
        if earlier.approver_id != approver.id:
            continue
        if earlier.tier == session.current_tier:
            return f"you already decided tier {session.current_tier} of session #{session.id}"
        if not session.profile.approver_may_decide_several_tiers:
            return (
                f"you decided tier {earlier.tier} of session #{session.id}; connection "
                f"profile '{session.profile.name}' wants a different person for each tier"
            )
    return None


def _in_tier(user: User, tier: ApprovalTier) -> bool:
    return user.id in {u.id for u in tier_approvers(tier)}


def _advance(core: Pamcore, session: ActivitySession, tier: ApprovalTier | None) -> None:
    """Enough approvals at this tier: go to the next tier, or to the schedule."""
    got = sum(
        1
        for a in session.approvals
        if a.tier == session.current_tier and a.decision == Decision.APPROVED
    )
    if got < approvals_required(tier):
        return
    now = core.now()
    if session.profile.tier(session.current_tier + 1) is not None:
        session.current_tier += 1
        session.tier_started_at = now
        return
    transition(session, Status.SCHEDULED)
    session.current_tier = 0
    # A "now" request starts when it is approved, not when it was typed.
    session.scheduled_start = max(session.scheduled_start, now)


def approval_queue(core: Pamcore, db: Session, approver: User) -> list[ActivitySession]:
    """Sessions waiting for ``approver``'s decision at their current tier."""
    waiting = db.scalars(
        select(ActivitySession)
        .where(ActivitySession.status == Status.WAITING_FOR_APPROVAL.value)
        .order_by(ActivitySession.created_at)
    ).all()
    return [s for s in waiting if decision_refusal(core, approver, s) is None]
