"""Asking for a session step by step (the Create Session wizard): which activities and
resources a user may request, and each step checked with the same rules
:func:`pamcore.services.sessions.create_session` applies at the end."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.errors import NotFound, PolicyDenied, ValidationError
from pamcore.model import AccessPolicy, Activity, Resource, User
from pamcore.model.policy import policy_activities, policy_resources
from pamcore.services.access import _granting_policies, find_policy
from pamcore.services.common import by_name
from pamcore.services.sessions import (
    MAX_RESOURCES,
    SessionRequest,
    check_notes,
    check_start,
    check_with_plugins,
)

#: The wizard's steps that take input, in order.
STEPS = ("activity", "resources", "notes", "schedule")


def requestable_activities(db: Session, user: User) -> list[Activity]:
    """Activities some enabled access policy grants ``user`` (directly or via a group)."""
    granting = _granting_policies(db, user, None).subquery()
    ids = select(policy_activities.c.activity_id).where(
        policy_activities.c.policy_id.in_(select(granting.c.id))
    )
    return list(db.scalars(select(Activity).where(Activity.id.in_(ids)).order_by(Activity.name)))


def requestable_resources(db: Session, user: User, activity_name: str) -> list[Resource]:
    """Resources ``user`` may request ``activity_name`` on."""
    activity = _activity(db, activity_name)
    granting = _granting_policies(db, user, activity).subquery()
    ids = select(policy_resources.c.resource_id).where(
        policy_resources.c.policy_id.in_(select(granting.c.id))
    )
    return list(db.scalars(select(Resource).where(Resource.id.in_(ids)).order_by(Resource.name)))


def _activity(db: Session, name: str) -> Activity:
    if not name.strip():
        raise ValidationError("activity", "choose an activity")
    try:
        return by_name(db, Activity, name)
    except NotFound as exc:
        raise ValidationError("activity", str(exc)) from None


def _policy(
    db: Session, user: User, request: SessionRequest
) -> tuple[AccessPolicy, Activity, list[Resource]]:
    activity = _activity(db, request.activity)
    names = list(dict.fromkeys(n.strip() for n in request.resources if n.strip()))
    if not names:
        raise ValidationError("resources", "select at least one resource")
    if len(names) > MAX_RESOURCES:
        raise ValidationError("resources", f"at most {MAX_RESOURCES} resources per session")
    resources = []
    for name in names:
        try:
            resources.append(by_name(db, Resource, name))
        except NotFound as exc:
            raise ValidationError("resources", str(exc)) from None
    try:
        return find_policy(db, user, activity, resources), activity, resources
    except PolicyDenied as exc:
        raise ValidationError("resources", str(exc)) from None


def check_step(
    core: Pamcore, db: Session, user: User, request: SessionRequest, step: str
) -> dt.datetime | None:
    """Check ``request`` up to and including ``step``; raises the ValidationError the final
    request would raise. Returns the checked start (UTC) once the schedule step is reached."""
    if step not in STEPS:
        raise ValidationError("step", f"one of {', '.join(STEPS)}")
    upto = STEPS.index(step)
    if upto == 0:
        activity = _activity(db, request.activity)
        if activity not in requestable_activities(db, user):
            raise ValidationError(
                "activity", f"no access policy grants {user.username} '{activity.name}'"
            )
        return None
    policy, activity, resources = _policy(db, user, request)
    if upto >= 2:
        notes, ticket = check_notes(policy.profile, request.notes, request.ticket)
        check_with_plugins(core, user, activity, resources, notes, ticket)
    if upto >= 3:
        return check_start(request.start, core.now())
    return None


__all__ = ["STEPS", "check_step", "requestable_activities", "requestable_resources"]
