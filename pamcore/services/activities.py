"""Activities: what a session does, how it logs in, and its pre/post-session actions.

Kept apart from profiles and policies so each concept has its own module; every rule an
administrator could get wrong is checked at save time, not when a session starts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.errors import ValidationError
from pamcore.model import (
    ActionPhase,
    Activity,
    ActivityAction,
    ActivityKind,
    ActivitySession,
    LoginMode,
)
from pamcore.services.actions import check_action_types, check_login_template
from pamcore.services.common import (
    Actor,
    by_name,
    check_text,
    renumber,
    require_admin,
    sessions_using,
)
from pamcore.services.directory import unique_name
from pamcore.services.inventory import get_credential
from pamcore.services.paging import Page, fetch_page, page_request

MAX_ACTIONS_PER_PHASE = 20


def _choice(field: str, enum_cls: type, value: Any) -> Any:
    try:
        return enum_cls(value)
    except ValueError:
        raise ValidationError(field, f"one of {', '.join(m.value for m in enum_cls)}") from None


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


def page_activities(db: Session, limit: str | None, cursor: str | None) -> Page[Activity]:
    """One page of the activities, newest first, for a client's ``limit`` and ``cursor``."""
    return fetch_page(db, select(Activity), Activity.id, page_request("activities", limit, cursor))


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
    used = sessions_using(db, ActivitySession.activity_id, activity.id)
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
    if spec is not None and spec.check is not None:
        try:
            spec.check(db, params)
        except ValueError as exc:
            raise ValidationError("params", f"'{action_type}': {exc}") from None
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
    renumber(db, steps)
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
    renumber(db, steps)
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


def _activity_summary(activity: Activity) -> dict[str, Any]:
    return {
        "kind": activity.kind.value,
        "login_mode": activity.login_mode.value,
        "credential": activity.credential.name if activity.credential else None,
    }
