"""Connection profiles: the rules a session runs under (duration, extensions, password
view, recording) and its approval tiers.

Kept apart from activities and policies so each concept has its own module; rules are
checked at save time so a session never trips over a misconfigured profile.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.errors import ValidationError
from pamcore.model import (
    AccessPolicy,
    ActivitySession,
    ApprovalTier,
    ConnectionProfile,
    Group,
    User,
)
from pamcore.model.policy import PROFILE_FLAGS, PROFILE_RANGES
from pamcore.services.common import (
    Actor,
    by_name,
    check_text,
    renumber,
    require_admin,
    sessions_using,
)
from pamcore.services.directory import unique_name

MAX_TIERS = 3


@dataclass(frozen=True)
class ProfileChanges:
    """Fields to set; ``None`` leaves a field as it is. ``escalation_minutes=0`` and
    ``escalation_user=""`` / ``escalation_group=""`` switch escalation off."""

    name: str | None = None
    description: str | None = None
    max_duration_minutes: int | None = None
    extension_enabled: bool | None = None
    extension_minutes: int | None = None
    extension_max_count: int | None = None
    warning_minutes: int | None = None
    requester_may_approve: bool | None = None
    approver_may_decide_several_tiers: bool | None = None
    escalation_minutes: int | None = None
    escalation_user: str | None = None
    escalation_group: str | None = None
    notes_required: bool | None = None
    ticket_required: bool | None = None
    allow_view_password: bool | None = None
    allow_copy_password: bool | None = None
    password_view_seconds: int | None = None
    recording: bool | None = None
    clipboard_redirection: bool | None = None


def list_profiles(db: Session) -> list[ConnectionProfile]:
    return list(db.scalars(select(ConnectionProfile).order_by(ConnectionProfile.name)))


def get_profile(db: Session, name: str) -> ConnectionProfile:
    return by_name(db, ConnectionProfile, name)


def create_profile(
    core: Pamcore, db: Session, actor: Actor, name: str, changes: ProfileChanges | None = None
) -> ConnectionProfile:
    require_admin(actor, "create connection profiles")
    profile = ConnectionProfile(name="")
    _apply_profile(db, profile, replace(changes or ProfileChanges(), name=name))
    db.add(profile)
    db.flush()
    core.audit(
        db, actor.username, "profile.created", target=profile.name, **_profile_summary(profile)
    )
    return profile


def update_profile(
    core: Pamcore, db: Session, actor: Actor, name: str, changes: ProfileChanges
) -> ConnectionProfile:
    require_admin(actor, "change connection profiles")
    profile = get_profile(db, name)
    before = profile.name
    _apply_profile(db, profile, changes)
    db.flush()
    core.audit(db, actor.username, "profile.updated", target=before, **_profile_summary(profile))
    return profile


def _apply_profile(db: Session, profile: ConnectionProfile, ch: ProfileChanges) -> None:
    if ch.name is not None:
        profile.name = unique_name(db, ConnectionProfile, ch.name, current=profile)
    if ch.description is not None:
        profile.description = check_text("description", ch.description, 512)
    for field, (low, high, unit) in PROFILE_RANGES.items():
        value = getattr(ch, field)
        if value is None or (field == "escalation_minutes" and value == 0):
            continue
        if not low <= value <= high:
            raise ValidationError(field, f"must be {low}-{high} {unit} (got {value})")
        setattr(profile, field, value)
    for flag in PROFILE_FLAGS:
        value = getattr(ch, flag)
        if value is not None:
            setattr(profile, flag, bool(value))
    if ch.escalation_minutes == 0:
        profile.escalation_minutes = None
    if ch.escalation_user is not None:
        profile.escalation_user = (
            by_name(db, User, ch.escalation_user) if ch.escalation_user else None
        )
    if ch.escalation_group is not None:
        profile.escalation_group = (
            by_name(db, Group, ch.escalation_group) if ch.escalation_group else None
        )
    _check_profile(profile)


def _check_profile(profile: ConnectionProfile) -> None:
    to = profile.escalation_user or profile.escalation_group
    if profile.escalation_user is not None and profile.escalation_group is not None:
        raise ValidationError("escalation", "escalate to a user or to a group, not both")
    if profile.escalation_minutes is not None and to is None:
        raise ValidationError(
            "escalation", "an escalation delay needs a user or group to escalate to"
        )
    if to is not None and profile.escalation_minutes is None:
        raise ValidationError("escalation_minutes", "give the delay before escalation (1-10080)")


def delete_profile(core: Pamcore, db: Session, actor: Actor, name: str) -> None:
    """Delete a profile no policy names and no session ran under (sessions read their rules
    from it until the end, and the history keeps them)."""
    require_admin(actor, "delete connection profiles")
    profile = get_profile(db, name)
    policies = db.scalars(select(AccessPolicy).where(AccessPolicy.profile_id == profile.id)).all()
    if policies:
        raise ValidationError(
            "profile",
            f"'{profile.name}' is used by access policy "
            f"{', '.join(repr(p.name) for p in policies)}; point them at another profile first",
        )
    used = sessions_using(db, ActivitySession.profile_id, profile.id)
    if used:
        raise ValidationError(
            "profile", f"'{profile.name}' governed {used} session(s) and stays for the history"
        )
    db.delete(profile)
    core.audit(db, actor.username, "profile.deleted", target=profile.name)


def add_tier(
    core: Pamcore,
    db: Session,
    actor: Actor,
    profile_name: str,
    *,
    approvals_required: int = 1,
    users: Iterable[str] = (),
    groups: Iterable[str] = (),
) -> ApprovalTier:
    """Append an approval tier: ``approvals_required`` of these users and group members."""
    require_admin(actor, "change connection profiles")
    profile = get_profile(db, profile_name)
    if len(profile.tiers) >= MAX_TIERS:
        raise ValidationError("tier", f"at most {MAX_TIERS} approval tiers per profile")
    approvers = [by_name(db, User, u) for u in users]
    approver_groups = [by_name(db, Group, g) for g in groups]
    if not approvers and not approver_groups:
        raise ValidationError("approvers", "name at least one approving user or group")
    if approvals_required < 1:
        raise ValidationError("approvals_required", "must be at least 1")
    if not approver_groups and approvals_required > len(set(approvers)):
        raise ValidationError(
            "approvals_required",
            f"{approvals_required} approvals can never be reached by "
            f"{len(set(approvers))} approver(s)",
        )
    tier = ApprovalTier(
        position=len(profile.tiers) + 1,
        approvals_required=approvals_required,
        users=list(dict.fromkeys(approvers)),
        groups=list(dict.fromkeys(approver_groups)),
    )
    profile.tiers.append(tier)
    db.flush()
    core.audit(
        db,
        actor.username,
        "profile.tier_added",
        target=profile.name,
        position=tier.position,
        approvals_required=approvals_required,
        users=[u.username for u in tier.users],
        groups=[g.name for g in tier.groups],
    )
    return tier


def remove_tier(
    core: Pamcore, db: Session, actor: Actor, profile_name: str, position: int
) -> ConnectionProfile:
    """Remove a tier; later tiers move up. Sessions waiting on this profile keep their
    place by number, so an administrator should do this when none is waiting."""
    require_admin(actor, "change connection profiles")
    profile = get_profile(db, profile_name)
    tier = profile.tier(position)
    if tier is None:
        raise ValidationError(
            "position",
            f"'{profile.name}' has {len(profile.tiers)} approval tier(s)"
            + (f"; give 1-{len(profile.tiers)}" if profile.tiers else ""),
        )
    profile.tiers.remove(tier)
    db.flush()
    renumber(db, list(profile.tiers))
    core.audit(db, actor.username, "profile.tier_removed", target=profile.name, position=position)
    return profile


def _profile_summary(profile: ConnectionProfile) -> dict[str, Any]:
    return {
        "max_duration_minutes": profile.max_duration_minutes,
        "tiers": len(profile.tiers),
        "allow_view_password": profile.allow_view_password,
    }
