"""Default approval rules: who may decide a session at its current tier."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import object_session

from pamcore import hookimpl
from pamcore.model import ActivitySession, ApprovalTier, Role, User
from pamcore.services.approvals import group_approvers, tier_approvers


@hookimpl
def pamcore_approvers(session: ActivitySession, tier: ApprovalTier | None) -> list[User]:
    if tier is None:
        # A plugin demanded approval on a profile without tiers: administrators decide.
        db = object_session(session)
        return list(db.scalars(select(User).where(User.role == Role.ADMIN))) if db else []
    approvers = tier_approvers(tier)
    profile = session.profile
    if session.escalated_tier >= tier.position:
        if profile.escalation_user is not None:
            approvers.append(profile.escalation_user)
        if profile.escalation_group is not None:
            approvers.extend(group_approvers(profile.escalation_group))
    return approvers


@hookimpl
def pamcore_approval_veto(session: ActivitySession, approver: User) -> str | None:
    if not approver.is_active:
        return f"{approver.username} is disabled"
    if approver.id == session.requester_id and not session.profile.requester_may_approve:
        return (
            f"you cannot approve your own session: connection profile "
            f"'{session.profile.name}' does not allow requesters to approve"
        )
    return None
