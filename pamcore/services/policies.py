"""What may be done and under which rules: activities (with their pre/post actions),
connection profiles (with approval tiers) and access policies.

Every rule an administrator could get wrong is checked here, at save time, so a session
never fails at 3 a.m. because of a typo made last week.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.errors import ValidationError
from pamcore.model import (
    AccessPolicy,
    ActionPhase,
    Activity,
    ActivityAction,
    ActivityKind,
    ActivitySession,
    ApprovalTier,
    ConnectionProfile,
    Group,
    LoginMode,
    Resource,
    User,
)
from pamcore.services.actions import check_action_types, check_login_template
from pamcore.services.common import Actor, by_name, require_admin
from pamcore.services.directory import check_text, unique_name
from pamcore.services.inventory import get_credential

MAX_TIERS = 3
MAX_ACTIONS_PER_PHASE = 20


def _choice(field: str, enum_cls: type, value: Any) -> Any:
    try:
        return enum_cls(value)
    except ValueError:
        raise ValidationError(field, f"one of {', '.join(m.value for m in enum_cls)}") from None


def _in_use(db: Session, column: Any, value: int) -> int:
    return db.scalar(select(func.count()).select_from(ActivitySession).where(column == value)) or 0


# -- activities -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ActivityChanges:
    """Fields to set; ``None`` leaves a field as it is, ``credential=""`` removes it."""

    name: str | None = None
    description: str | None = None
    kind: ActivityKind | str | None = None
    login_mode: LoginMode | str | None = None
    login_template: str | None = None
    credential: str | None = None


def list_activities(db: Session) -> list[Activity]:
    return list(db.scalars(select(Activity).order_by(Activity.name)))


def get_activity(db: Session, name: str) -> Activity:
    return by_name(db, Activity, name)


def create_activity(
    core: Pamcore, db: Session, actor: Actor, name: str, changes: ActivityChanges
) -> Activity:
    """Create an activity. Without ``login_mode``, one with a credential (or credential-based)
    logs in with it (managed); one without creates an ephemeral account per session."""
    require_admin(actor, "create activities")
    if changes.login_mode is None:
        by_credential = changes.credential or changes.kind == ActivityKind.CREDENTIAL
        mode = LoginMode.MANAGED if by_credential else LoginMode.EPHEMERAL
        changes = replace(changes, login_mode=mode)
    activity = Activity(name="")
    _apply_activity(db, activity, replace(changes, name=name))
    db.add(activity)
    db.flush()
    core.audit(
        db, actor.username, "activity.created", target=activity.name, **_activity_summary(activity)
    )
    return activity


def update_activity(
    core: Pamcore, db: Session, actor: Actor, name: str, changes: ActivityChanges
) -> Activity:
    require_admin(actor, "change activities")
    activity = get_activity(db, name)
    before = activity.name
    _apply_activity(db, activity, changes)
    db.flush()
    core.audit(db, actor.username, "activity.updated", target=before, **_activity_summary(activity))
    return activity


def _apply_activity(db: Session, activity: Activity, ch: ActivityChanges) -> None:
    if ch.name is not None:
        activity.name = unique_name(db, Activity, ch.name, current=activity)
    if ch.description is not None:
        activity.description = check_text("description", ch.description, 512)
    if ch.kind is not None:
        activity.kind = _choice("kind", ActivityKind, ch.kind)
    if ch.login_mode is not None:
        activity.login_mode = _choice("login_mode", LoginMode, ch.login_mode)
    if ch.login_template is not None:
        activity.login_template = ch.login_template.strip()
    if ch.credential is not None:
        activity.credential = get_credential(db, ch.credential) if ch.credential.strip() else None
    _check_activity(activity)


def _check_activity(activity: Activity) -> None:
    """The combination rules: what each kind and login mode needs to start a session."""
    kind = activity.kind or ActivityKind.RESOURCE
    mode = activity.login_mode or LoginMode.MANAGED
    if kind == ActivityKind.CREDENTIAL:
        if mode == LoginMode.EPHEMERAL:
            raise ValidationError(
                "login_mode", "a credential-based activity logs in with its credential: managed"
            )
        if activity.credential is None:
            raise ValidationError("credential", "a credential-based activity needs a credential")
    elif mode == LoginMode.MANAGED and activity.credential is None:
        raise ValidationError(
            "credential",
            "a managed login needs a credential (or use the ephemeral login mode)",
        )
    if mode == LoginMode.EPHEMERAL:
        check_login_template(activity.login_template or "{user}-{random}")


def delete_activity(core: Pamcore, db: Session, actor: Actor, name: str) -> None:
    """Delete an activity no session used; sessions keep pointing at what they ran."""
    require_admin(actor, "delete activities")
    activity = get_activity(db, name)
    used = _in_use(db, ActivitySession.activity_id, activity.id)
    if used:
        raise ValidationError(
            "activity",
            f"'{activity.name}' was used by {used} session(s) and stays for the history; "
            f"remove it from its access policies instead",
        )
    db.delete(activity)
    core.audit(db, actor.username, "activity.deleted", target=activity.name)


def parse_params(text: str) -> dict[str, Any]:
    """Action parameters as typed by an administrator: a JSON object (``{}`` if empty)."""
    if not text.strip():
        return {}
    try:
        params = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            "params", f"not valid JSON ({exc.msg} at column {exc.colno})"
        ) from None
    if not isinstance(params, dict):
        raise ValidationError("params", 'must be a JSON object, e.g. {"message": "hello"}')
    return params


def add_action(
    core: Pamcore,
    db: Session,
    actor: Actor,
    activity_name: str,
    phase: ActionPhase | str,
    action_type: str,
    params: dict[str, Any] | None = None,
    position: int | None = None,
) -> ActivityAction:
    """Insert a pre- or post-session step (at the end, or at 1-based ``position``)."""
    require_admin(actor, "change activities")
    activity = get_activity(db, activity_name)
    phase = _choice("phase", ActionPhase, phase)
    params = dict(params or {})
    known = core.hooks.actions()
    spec = known.get(action_type)
    if spec is not None and spec.params:
        unknown = sorted(set(params) - set(spec.params))
        if unknown:
            raise ValidationError(
                "params",
                f"'{action_type}' does not understand {', '.join(unknown)} "
                f"(it takes: {', '.join(sorted(spec.params))})",
            )
    steps = activity.actions_for(phase)
    if len(steps) >= MAX_ACTIONS_PER_PHASE:
        raise ValidationError("action", f"at most {MAX_ACTIONS_PER_PHASE} {phase.value} actions")
    where = len(steps) + 1 if position is None else position
    if not 1 <= where <= len(steps) + 1:
        raise ValidationError("position", f"1-{len(steps) + 1} for the {phase.value} actions")
    action = ActivityAction(phase=phase, position=0, action_type=action_type, params=params)
    activity.actions.append(action)
    try:
        check_action_types(core, activity)
    except ValidationError:
        activity.actions.remove(action)  # leave the activity as it was
        raise
    steps.insert(where - 1, action)
    _renumber(db, steps)
    core.audit(
        db,
        actor.username,
        "activity.action_added",
        target=activity.name,
        phase=phase.value,
        position=where,
        action_type=action_type,
        params=sorted(params),
    )
    return action


def remove_action(
    core: Pamcore,
    db: Session,
    actor: Actor,
    activity_name: str,
    phase: ActionPhase | str,
    position: int,
) -> Activity:
    require_admin(actor, "change activities")
    activity = get_activity(db, activity_name)
    phase = _choice("phase", ActionPhase, phase)
    steps = activity.actions_for(phase)
    if not 1 <= position <= len(steps):
        raise ValidationError(
            "position",
            f"'{activity.name}' has {len(steps)} {phase.value} action(s); give 1-{len(steps)}"
            if steps
            else f"'{activity.name}' has no {phase.value} actions",
        )
    removed = steps.pop(position - 1)
    activity.actions.remove(removed)
    db.flush()  # the delete goes first, so renumbering never collides with it
    _renumber(db, steps)
    core.audit(
        db,
        actor.username,
        "activity.action_removed",
        target=activity.name,
        phase=phase.value,
        position=position,
        action_type=removed.action_type,
    )
    return activity


def _renumber(db: Session, rows: Sequence[ActivityAction | ApprovalTier]) -> None:
    """Give rows positions 1..n without tripping the (parent, position) unique constraint:
    first out of the way (negative), then into place."""
    for i, row in enumerate(rows, start=1):
        row.position = -i
    db.flush()
    for i, row in enumerate(rows, start=1):
        row.position = i
    db.flush()


def activity_record(activity: Activity) -> dict[str, Any]:
    return {
        "name": activity.name,
        "description": activity.description,
        "kind": activity.kind,
        "login_mode": activity.login_mode,
        "login_template": activity.login_template
        if activity.login_mode == LoginMode.EPHEMERAL
        else None,
        "credential": activity.credential.name if activity.credential else None,
        "pre_actions": _steps(activity, ActionPhase.PRE),
        "post_actions": _steps(activity, ActionPhase.POST),
    }


def _steps(activity: Activity, phase: ActionPhase) -> list[str]:
    return [
        f"{a.position}. {a.action_type}" + (f" {json.dumps(a.params)}" if a.params else "")
        for a in activity.actions_for(phase)
    ]


def _activity_summary(activity: Activity) -> dict[str, Any]:
    return {
        "kind": activity.kind.value,
        "login_mode": activity.login_mode.value,
        "credential": activity.credential.name if activity.credential else None,
    }


# -- connection profiles --------------------------------------------------------------------

#: Allowed ranges of the numeric profile fields (inclusive).
RANGES: dict[str, tuple[int, int, str]] = {
    "max_duration_minutes": (1, 10080, "minutes (up to one week)"),
    "extension_minutes": (1, 1440, "minutes"),
    "extension_max_count": (0, 20, "extensions"),
    "warning_minutes": (1, 60, "minutes"),
    "password_view_seconds": (5, 300, "seconds"),
    "escalation_minutes": (1, 10080, "minutes"),
}


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
    escalation_minutes: int | None = None
    escalation_user: str | None = None
    escalation_group: str | None = None
    notes_required: bool | None = None
    ticket_required: bool | None = None
    allow_view_password: bool | None = None
    allow_copy_password: bool | None = None
    password_view_seconds: int | None = None
    recording: bool | None = None


_PROFILE_FLAGS = (
    "extension_enabled",
    "requester_may_approve",
    "notes_required",
    "ticket_required",
    "allow_view_password",
    "allow_copy_password",
    "recording",
)


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
    for field, (low, high, unit) in RANGES.items():
        value = getattr(ch, field)
        if value is None or (field == "escalation_minutes" and value == 0):
            continue
        if not low <= value <= high:
            raise ValidationError(field, f"must be {low}-{high} {unit} (got {value})")
        setattr(profile, field, value)
    for flag in _PROFILE_FLAGS:
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
    used = _in_use(db, ActivitySession.profile_id, profile.id)
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
    _renumber(db, list(profile.tiers))
    core.audit(db, actor.username, "profile.tier_removed", target=profile.name, position=position)
    return profile


def profile_record(profile: ConnectionProfile) -> dict[str, Any]:
    record: dict[str, Any] = {"name": profile.name, "description": profile.description}
    record.update({f: getattr(profile, f) for f in RANGES if f != "escalation_minutes"})
    record.update({f: getattr(profile, f) for f in _PROFILE_FLAGS})
    record["approval_tiers"] = [
        f"{t.position}: {t.approvals_required} of {t.describe_approvers()}" for t in profile.tiers
    ]
    record["escalation_minutes"] = profile.escalation_minutes
    record["escalation_to"] = (
        profile.escalation_user.username
        if profile.escalation_user
        else (f"the {profile.escalation_group.name} group" if profile.escalation_group else None)
    )
    return record


def _profile_summary(profile: ConnectionProfile) -> dict[str, Any]:
    return {
        "max_duration_minutes": profile.max_duration_minutes,
        "tiers": len(profile.tiers),
        "allow_view_password": profile.allow_view_password,
    }


# -- access policies ------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyChanges:
    """Fields to set; a list replaces the current one, ``None`` leaves it."""

    name: str | None = None
    profile: str | None = None
    users: Sequence[str] | None = None
    groups: Sequence[str] | None = None
    activities: Sequence[str] | None = None
    resources: Sequence[str] | None = None
    enabled: bool | None = None


def list_policies(db: Session) -> list[AccessPolicy]:
    return list(db.scalars(select(AccessPolicy).order_by(AccessPolicy.name)))


def get_policy(db: Session, name: str) -> AccessPolicy:
    return by_name(db, AccessPolicy, name)


def create_policy(
    core: Pamcore, db: Session, actor: Actor, name: str, changes: PolicyChanges
) -> AccessPolicy:
    """Grant users and groups activities on resources under a connection profile."""
    require_admin(actor, "create access policies")
    if changes.profile is None:
        raise ValidationError("profile", "name the connection profile the policy grants under")
    policy = AccessPolicy(name="", enabled=True)
    _apply_policy(db, policy, replace(changes, name=name))
    db.add(policy)
    db.flush()
    core.audit(db, actor.username, "policy.created", target=policy.name, **_policy_summary(policy))
    return policy


def update_policy(
    core: Pamcore, db: Session, actor: Actor, name: str, changes: PolicyChanges
) -> AccessPolicy:
    require_admin(actor, "change access policies")
    policy = get_policy(db, name)
    before = policy.name
    _apply_policy(db, policy, changes)
    db.flush()
    core.audit(db, actor.username, "policy.updated", target=before, **_policy_summary(policy))
    return policy


def set_policy_enabled(
    core: Pamcore, db: Session, actor: Actor, name: str, enabled: bool
) -> AccessPolicy:
    """Switch a policy off (or back on) without losing what it grants; open sessions keep
    running, new requests under it are refused."""
    require_admin(actor, "enable or disable access policies")
    policy = get_policy(db, name)
    policy.enabled = enabled
    core.audit(
        db, actor.username, "policy.enabled" if enabled else "policy.disabled", target=policy.name
    )
    return policy


def _apply_policy(db: Session, policy: AccessPolicy, ch: PolicyChanges) -> None:
    if ch.name is not None:
        policy.name = unique_name(db, AccessPolicy, ch.name, current=policy)
    if ch.profile is not None:
        policy.profile = by_name(db, ConnectionProfile, ch.profile)
    if ch.users is not None:
        policy.users = _many(db, User, ch.users)
    if ch.groups is not None:
        policy.groups = _many(db, Group, ch.groups)
    if ch.activities is not None:
        policy.activities = _many(db, Activity, ch.activities)
    if ch.resources is not None:
        policy.resources = _many(db, Resource, ch.resources)
    if ch.enabled is not None:
        policy.enabled = ch.enabled
    if not policy.users and not policy.groups:
        raise ValidationError("users", "grant to at least one user or group")
    if not policy.activities:
        raise ValidationError("activities", "grant at least one activity")
    if not policy.resources:
        raise ValidationError("resources", "grant on at least one resource")


def _many(db: Session, model: type, names: Iterable[str]) -> list[Any]:
    return list(dict.fromkeys(by_name(db, model, n) for n in names))


def delete_policy(core: Pamcore, db: Session, actor: Actor, name: str) -> None:
    require_admin(actor, "delete access policies")
    policy = get_policy(db, name)
    db.delete(policy)
    core.audit(db, actor.username, "policy.deleted", target=policy.name)


def policy_record(policy: AccessPolicy) -> dict[str, Any]:
    return {
        "name": policy.name,
        "enabled": policy.enabled,
        "profile": policy.profile.name,
        "users": [u.username for u in policy.users],
        "groups": [g.name for g in policy.groups],
        "activities": [a.name for a in policy.activities],
        "resources": [r.name for r in policy.resources],
    }


def _policy_summary(policy: AccessPolicy) -> dict[str, Any]:
    record = policy_record(policy)
    del record["name"]
    return record
