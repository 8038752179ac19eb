"""Activity sessions: request, cancel, end, extend, list — the one path for every edge."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, selectinload

from pamcore.clock import format_utc
from pamcore.core import Pamcore
from pamcore.errors import NotFound, PolicyDenied, ValidationError
from pamcore.lifecycle import CONNECTABLE, OPEN, TERMINAL, Status, transition
from pamcore.model import (
    Activity,
    ActivitySession,
    ConnectionProfile,
    Resource,
    Role,
    User,
)
from pamcore.model.sessions import session_resources
from pamcore.services.access import find_policy
from pamcore.services.approvals import is_eligible_approver
from pamcore.services.common import (
    Actor,
    M,
    SystemActor,
    by_name,
    check_text,
    get_session,
    is_admin,
    worker_name,
)
from pamcore.services.ending import begin_ending
from pamcore.services.paging import Page, fetch_page, page_request
from pamcore.session_changes import EXTENDED

MAX_NOTES = 4000
MAX_TICKET = 64
MAX_REASON = 400
MAX_RESOURCES = 50
#: How far in the past a "scheduled" start may be before it is called a mistake.
START_TOLERANCE = dt.timedelta(minutes=1)
MAX_LEAD = dt.timedelta(days=366)


@dataclass(frozen=True)
class SessionRequest:
    """What the wizard, the CLI, the API and DirectConnect all ask for."""

    activity: str
    resources: tuple[str, ...]
    notes: str = ""
    ticket: str = ""
    #: ``None`` means now.
    start: dt.datetime | None = None


def _lookup(db: Session, model: type[M], name: str, field: str) -> M:
    """A name the requester typed: a missing one is a validation error on that field."""
    try:
        return by_name(db, model, name)
    except NotFound as exc:
        raise ValidationError(field, str(exc)) from None


def create_session(
    core: Pamcore, db: Session, requester: User, request: SessionRequest
) -> ActivitySession:
    """Validate a request against policy and profile, store it, and route it to approval
    or the schedule. Validation errors name the field and the reason."""
    now = core.now()
    activity: Activity = _lookup(db, Activity, request.activity, "activity")
    names = list(dict.fromkeys(n.strip() for n in request.resources if n.strip()))
    if not names:
        raise ValidationError("resources", "select at least one resource")
    if len(names) > MAX_RESOURCES:
        raise ValidationError("resources", f"at most {MAX_RESOURCES} resources per session")
    resources: list[Resource] = []
    for name in names:
        resource = _lookup(db, Resource, name, "resources")
        if resource not in resources:
            resources.append(resource)
    try:
        policy = find_policy(db, requester, activity, resources)
    except PolicyDenied as refusal:
        raise refusal.audited(
            requester.username,
            "session.refused",
            target=activity.name,
            resources=[r.name for r in resources],
        ) from None
    profile = policy.profile
    notes, ticket = check_notes(profile, request.notes, request.ticket)
    start = check_start(request.start, now)
    check_with_plugins(core, requester, activity, resources, notes, ticket)
    _refuse_duplicate(db, requester, activity, resources)

    session = ActivitySession(
        requester=requester,
        activity=activity,
        policy=policy,
        profile=profile,
        resources=resources,
        notes=notes,
        ticket=ticket,
        scheduled_start=start,
        status=Status.REQUESTED,
        created_at=now,
    )
    # Routed before it is stored, so one INSERT writes it as it leaves this function.
    if profile.approval_required or core.hooks.approval_required(session):
        transition(session, Status.WAITING_FOR_APPROVAL)
        session.current_tier = 1
        session.tier_started_at = now
    else:
        transition(session, Status.SCHEDULED)
    db.add(session)
    db.flush()  # its id, for the audit event
    core.audit(
        db,
        requester.username,
        "session.requested",
        target=activity.name,
        session_id=session.id,
        resources=[r.name for r in resources],
        ticket=ticket,
        start=start.isoformat(),
        profile=profile.name,
    )
    return session


def check_notes(profile: ConnectionProfile, notes: str, ticket: str) -> tuple[str, str]:
    """Trimmed notes and ticket, present where ``profile`` requires them (the wizard checks
    its Notes step with this too)."""
    notes, ticket = check_text("notes", notes, MAX_NOTES), check_text("ticket", ticket, MAX_TICKET)
    if profile.notes_required and not notes:
        raise ValidationError("notes", f"required by connection profile '{profile.name}'")
    if profile.ticket_required and not ticket:
        raise ValidationError("ticket", f"a ticket number is required by '{profile.name}'")
    return notes, ticket


def check_with_plugins(
    core: Pamcore,
    requester: User,
    activity: Activity,
    resources: list[Resource],
    notes: str,
    ticket: str,
) -> None:
    """The plugins' say on a request (e.g. a ticket number format), as a ValidationError."""
    problems = core.hooks.validate_session_request(
        requester, activity.name, [r.name for r in resources], notes, ticket
    )
    if problems:
        first = problems[0]
        raise ValidationError(first.field, "; ".join(p.reason for p in problems))


def parse_start(value: object) -> dt.datetime | None:
    """A start time as people and scripts type it: ``None`` or ``now`` for now, else an
    ISO 8601 / RFC 3339 date-time with a zone (``2026-12-01T14:00Z``)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "now")):
        return None
    example = "use e.g. 2026-12-01T14:00Z or 'now'"
    if not isinstance(value, str):
        raise ValidationError("start", f"a date and time is expected; {example}")
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        start = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError("start", f"'{value}' is not a date and time; {example}") from None
    if start.tzinfo is None:
        raise ValidationError("start", "give a time zone, e.g. 2026-12-01T14:00Z")
    return start


def check_start(start: dt.datetime | None, now: dt.datetime) -> dt.datetime:
    """The start in UTC: ``None`` is now; a past or far-future time is refused."""
    if start is None:
        return now
    if start.tzinfo is None:
        raise ValidationError("start", "give a time zone (or use UTC), e.g. 2026-12-01T14:00Z")
    if start < now - START_TOLERANCE:
        raise ValidationError("start", f"{format_utc(start, now)} is in the past")
    if start > now + MAX_LEAD:
        raise ValidationError("start", "at most one year ahead")
    return start.astimezone(dt.UTC)


def _refuse_duplicate(
    db: Session, requester: User, activity: Activity, resources: list[Resource]
) -> None:
    existing = db.scalar(
        select(ActivitySession)
        .join(session_resources, session_resources.c.session_id == ActivitySession.id)
        .where(
            ActivitySession.requester_id == requester.id,
            ActivitySession.activity_id == activity.id,
            ActivitySession.status.in_([s.value for s in OPEN]),
            session_resources.c.resource_id.in_([r.id for r in resources]),
        )
        .limit(1)
    )
    if existing is not None:
        raise ValidationError(
            "resources",
            f"session #{existing.id} already covers this for '{activity.name}' "
            f"({Status(existing.status).label}); use it or cancel it first",
        )


def _may_manage(actor: Actor, session: ActivitySession) -> bool:
    return is_admin(actor) or (isinstance(actor, User) and actor.id == session.requester_id)


def cancel_session(
    core: Pamcore, db: Session, actor: Actor, session_id: int, reason: str = ""
) -> ActivitySession:
    """Cancel before or during the session (requester or admin). A provisioned session goes
    to ``ending`` so its post-session actions remove what was created for it; the caller
    completes it with :func:`pamcore.services.ending.complete_ending` (or the scheduler
    does)."""
    session = get_session(db, session_id)
    if not _may_manage(actor, session):
        raise PolicyDenied("only the requester or an administrator may cancel this session")
    status = Status(session.status)
    reason = check_text("reason", reason, MAX_REASON)
    why = f"canceled by {actor.username}" + (f": {reason}" if reason else "")
    if status in CONNECTABLE:
        begin_ending(core, db, session, Status.CANCELED, why, actor.username, worker_name())
        return session
    if status == Status.PROVISIONING:
        raise PolicyDenied(
            f"session #{session.id} is being provisioned; cancel it again in a few seconds"
        )
    transition(session, Status.CANCELED)
    session.finished_at = core.now()
    session.outcome_reason = why
    core.audit(db, actor.username, "session.canceled", session_id=session.id, reason=reason)
    return session


def end_session(core: Pamcore, db: Session, actor: Actor, session_id: int) -> ActivitySession:
    """End an available or active session early (requester or admin): it goes to
    ``ending``; complete it with :func:`pamcore.services.ending.complete_ending`."""
    session = get_session(db, session_id)
    if not _may_manage(actor, session):
        raise PolicyDenied("only the requester or an administrator may end this session")
    if Status(session.status) not in CONNECTABLE:
        raise PolicyDenied(
            f"session #{session.id} is {Status(session.status).label}; only an Available or "
            f"Active session can be ended (use cancel before it starts)"
        )
    reason = f"ended by {actor.username}"
    begin_ending(core, db, session, Status.ENDED, reason, actor.username, worker_name())
    return session


@dataclass(frozen=True)
class Extension:
    session_id: int
    new_end: dt.datetime
    extensions_left: int


def extend_session(core: Pamcore, db: Session, actor: Actor, session_id: int) -> Extension:
    """Extend by the profile's increment: only when the remaining time is at or under the
    warning threshold, if the profile allows it, within the maximum count."""
    session = get_session(db, session_id)
    if not _may_manage(actor, session):
        raise PolicyDenied("only the requester or an administrator may extend this session")
    now = core.now()
    profile = session.profile
    if Status(session.status) not in CONNECTABLE or session.ends_at is None:
        raise PolicyDenied(
            f"session #{session.id} is {Status(session.status).label}; only an Available or "
            f"Active session can be extended"
        )
    if not profile.extension_enabled:
        raise PolicyDenied(f"connection profile '{profile.name}' does not allow extensions")
    if session.extensions_used >= profile.extension_max_count:
        raise PolicyDenied(
            f"no extensions left ({session.extensions_used} of {profile.extension_max_count} used)"
        )
    remaining = session.ends_at - now
    window = dt.timedelta(minutes=profile.warning_minutes)
    if remaining > window:
        minutes = int(remaining.total_seconds() // 60)
        raise PolicyDenied(
            f"you can extend when {profile.warning_minutes} minutes or less remain "
            f"({minutes} minutes left, until {format_utc(session.ends_at, now)})"
        )
    session.ends_at += dt.timedelta(minutes=profile.extension_minutes)
    session.extensions_used += 1
    core.audit(
        db,
        actor.username,
        "session.extended",
        session_id=session.id,
        new_end=session.ends_at.isoformat(),
        extensions_used=session.extensions_used,
    )
    core.session_changes.announce(db, session.id, EXTENDED)
    return Extension(session.id, session.ends_at, session.extensions_left)


def extend_from_connection(core: Pamcore, session_id: int) -> Extension:
    """Ctrl+X inside a proxied connection: the session's requester asks, in a unit of its
    own (the proxies call this from a worker thread); raises PamError with the sentence."""
    with core.unit() as db:
        session = get_session(db, session_id)
        return extend_session(core, db, session.requester, session_id)


VIEWS = {
    "active": OPEN,
    "scheduled": frozenset({Status.SCHEDULED, Status.WAITING_FOR_APPROVAL}),
    "history": TERMINAL,
    "all": frozenset(Status),
}


def _visible_sessions(actor: Actor, view: str) -> Select[tuple[ActivitySession]]:
    """The sessions of ``view`` the actor may see: their own; everything for admins and
    auditors. Rows come with what a listing shows (resources, activity, requester)."""
    if view not in VIEWS:
        raise ValidationError("view", f"one of {', '.join(VIEWS)}")
    query = (
        select(ActivitySession)
        .where(ActivitySession.status.in_([s.value for s in VIEWS[view]]))
        .options(
            selectinload(ActivitySession.resources),
            selectinload(ActivitySession.activity),
            selectinload(ActivitySession.requester),
        )
    )
    if not isinstance(actor, SystemActor) and actor.role not in (Role.ADMIN, Role.AUDITOR):
        query = query.where(ActivitySession.requester_id == actor.id)
    return query


def list_sessions(
    db: Session,
    actor: Actor,
    view: str = "active",
    limit: int = 200,
    requester: User | None = None,
) -> list[ActivitySession]:
    """The first ``limit`` sessions the actor may see, latest start first (the dashboard's
    and the CLI's order); only ``requester``'s when given (a user's page for admins)."""
    query = _visible_sessions(actor, view).order_by(
        ActivitySession.scheduled_start.desc(), ActivitySession.id.desc()
    )
    if requester is not None:
        query = query.where(ActivitySession.requester_id == requester.id)
    return list(db.scalars(query.limit(limit)))


def page_sessions(
    db: Session, actor: Actor, view: str, limit: str | None, cursor: str | None
) -> Page[ActivitySession]:
    """One page of the sessions the actor may see, newest request first, for a client's
    ``limit`` and ``cursor`` as typed; following the cursors gives each session exactly
    once, however many are requested meanwhile. A cursor is good for its view only."""
    query = _visible_sessions(actor, view)
    wanted = page_request(f"sessions/{view}", limit, cursor)
    return fetch_page(db, query, ActivitySession.id, wanted)


def show_session(db: Session, actor: Actor, session_id: int) -> ActivitySession:
    """One session, for its requester, its approvers, admins and auditors; to anyone else it
    does not exist (no leak of who requested what)."""
    session = get_session(db, session_id)
    if (
        isinstance(actor, User)
        and actor.role not in (Role.ADMIN, Role.AUDITOR)
        and actor.id != session.requester_id
        and not is_eligible_approver(actor, session)
    ):
        raise NotFound(f"no activity session #{session_id}")
    return session


def find_or_request(
    core: Pamcore, db: Session, user: User, activity_name: str, resource_name: str
) -> ActivitySession:
    """DirectConnect: the user's open session for this activity and resource, or a new one
    created through the ordinary create path (which may wait for approval)."""
    activity = _lookup(db, Activity, activity_name, "activity")
    resource = _lookup(db, Resource, resource_name, "resource")
    existing = db.scalar(
        select(ActivitySession)
        .join(session_resources, session_resources.c.session_id == ActivitySession.id)
        .where(
            ActivitySession.requester_id == user.id,
            ActivitySession.activity_id == activity.id,
            session_resources.c.resource_id == resource.id,
            ActivitySession.status.in_([s.value for s in OPEN]),
        )
        .order_by(ActivitySession.id.desc())
        .limit(1)
    )
    if existing is not None:
        return existing
    return create_session(
        core,
        db,
        user,
        SessionRequest(
            activity=activity.name,
            resources=(resource.name,),
            notes="DirectConnect from a native client",
        ),
    )


__all__ = [
    "Extension",
    "SessionRequest",
    "cancel_session",
    "check_notes",
    "check_start",
    "check_with_plugins",
    "create_session",
    "end_session",
    "extend_session",
    "find_or_request",
    "list_sessions",
    "page_sessions",
    "parse_start",
    "show_session",
]
