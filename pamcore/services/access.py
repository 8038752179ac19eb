"""Who may do what where: access-policy resolution, connection authorisation for the
proxies, and password reveal. Refusals are sentences a user understands."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Select, exists, or_, select
from sqlalchemy.orm import Session, joinedload

from pamcore.clock import format_utc
from pamcore.core import Pamcore
from pamcore.directconnect import login_name
from pamcore.errors import NotFound, PolicyDenied, ValidationError
from pamcore.lifecycle import CONNECTABLE, OPEN, Status
from pamcore.model import (
    AccessPolicy,
    Activity,
    ActivitySession,
    ConnectionProfile,
    Credential,
    Resource,
    User,
)
from pamcore.model.directory import user_groups
from pamcore.model.policy import (
    policy_activities,
    policy_groups,
    policy_resources,
    policy_users,
)
from pamcore.model.sessions import session_resources
from pamcore.services.common import get_session
from pamcore.vault import Revealed


def _granting_policies(db: Session, user: User, activity: Activity | None) -> Select:
    """Enabled policies naming ``user`` (directly or through a group) and ``activity``.

    Resolved in SQL: loading every policy's member and resource lists per request was the
    largest cost of creating a session (bench/core.py).
    """
    member = or_(
        exists().where(
            policy_users.c.policy_id == AccessPolicy.id, policy_users.c.user_id == user.id
        ),
        exists().where(
            policy_groups.c.policy_id == AccessPolicy.id,
            policy_groups.c.group_id == user_groups.c.group_id,
            user_groups.c.user_id == user.id,
        ),
    )
    query = select(AccessPolicy.id).where(AccessPolicy.enabled.is_(True), member)
    if activity is not None:
        query = query.where(
            exists().where(
                policy_activities.c.policy_id == AccessPolicy.id,
                policy_activities.c.activity_id == activity.id,
            )
        )
    return query


def covered_resources(
    db: Session, user: User, activity: Activity | None, resource_ids: list[int]
) -> dict[int, set[int]]:
    """policy id -> which of ``resource_ids`` it grants ``user`` for ``activity``."""
    granting = _granting_policies(db, user, activity).subquery()
    rows = db.execute(
        select(policy_resources.c.policy_id, policy_resources.c.resource_id).where(
            policy_resources.c.policy_id.in_(select(granting.c.id)),
            policy_resources.c.resource_id.in_(resource_ids),
        )
    )
    covered: dict[int, set[int]] = {}
    for policy_id, resource_id in rows:
        covered.setdefault(policy_id, set()).add(resource_id)
    return covered


def find_policy(
    db: Session, user: User, activity: Activity, resources: list[Resource]
) -> AccessPolicy:
    """The enabled policy covering ``user`` × ``activity`` × every resource (lowest id wins),
    with its profile and the profile's approval tiers (which route the request)."""
    wanted = {r.id for r in resources}
    covered = covered_resources(db, user, activity, list(wanted))
    for policy_id in sorted(covered):
        if covered[policy_id] == wanted:
            profile = joinedload(AccessPolicy.profile)
            policy = db.get(
                AccessPolicy, policy_id, options=[profile.joinedload(ConnectionProfile.tiers)]
            )
            assert policy is not None
            return policy
    reachable = set().union(*covered.values()) if covered else set()
    uncovered = [r.name for r in resources if r.id not in reachable]
    if uncovered:
        raise PolicyDenied(
            f"no access policy grants {user.username} the activity '{activity.name}' on "
            f"{', '.join(uncovered)}"
        )
    raise PolicyDenied(
        f"{', '.join(r.name for r in resources)} are granted to {user.username} by different "
        f"access policies; request them in separate sessions"
    )


def waiting_reason(session: ActivitySession, now: dt.datetime) -> str:
    """Why an open session cannot be connected to yet, in the user's words; ``now`` is the
    core's clock, which decides whether a time is shown with its date."""
    status = Status(session.status)
    if status == Status.WAITING_FOR_APPROVAL:
        tier = session.profile.tier(session.current_tier)
        who = tier.describe_approvers() if tier else "an administrator"
        return f"session #{session.id} is waiting for approval by {who}"
    if status == Status.SCHEDULED:
        return f"session #{session.id} is scheduled for {format_utc(session.scheduled_start, now)}"
    if status in (Status.REQUESTED, Status.PROVISIONING):
        return f"session #{session.id} is being prepared; try again in a moment"
    if status == Status.ENDING:
        return f"session #{session.id} is ending"
    return f"session #{session.id} is {status.label.lower()}"


def finished_reason(session: ActivitySession, now: dt.datetime) -> str:
    status = Status(session.status)
    when = session.finished_at or session.ends_at
    at = f" at {format_utc(when, now)}" if when else ""
    if status == Status.EXPIRED:
        return f"session #{session.id} expired{at}"
    if status == Status.DENIED:
        return f"session #{session.id} was denied"
    return f"session #{session.id} {status.label.lower()}{at}"


def own_connectable_session(
    core: Pamcore, db: Session, user: User, session_id: int
) -> ActivitySession:
    """``user``'s own session, if it can be connected to now; to anyone else it does not
    exist, and a session that cannot be used yet (or any more) says why."""
    session = get_session(db, session_id)
    if user.id != session.requester_id:
        raise NotFound(f"no activity session #{session_id}")
    status = Status(session.status)
    if status not in CONNECTABLE:
        now = core.now()
        why = waiting_reason(session, now) if status in OPEN else finished_reason(session, now)
        raise PolicyDenied(f"you can connect once the session is Available; {why}")
    return session


@dataclass(frozen=True)
class ConnectionGrant:
    """What a proxy needs to let a user through: the session, where, as whom, until when."""

    session: ActivitySession
    resource: Resource
    port: int
    login_account: str
    password: Revealed | None
    private_key: Revealed | None
    ends_at: dt.datetime

    def __repr__(self) -> str:
        return (
            f"ConnectionGrant(session={self.session.id}, resource={self.resource.name!r}, "
            f"account={self.login_account!r})"
        )


def login_credential_secrets(
    core: Pamcore, session: ActivitySession
) -> tuple[Revealed | None, Revealed | None]:
    """(password, private key) of the session's login account."""
    if session.login_secret is not None:
        return core.vault.reveal(session.login_secret), None
    cred: Credential | None = session.login_credential
    if cred is None:
        return None, None
    password = core.vault.reveal(cred.password_secret) if cred.password_secret else None
    key = core.vault.reveal(cred.private_key_secret) if cred.private_key_secret else None
    return password, key


def sessions_on(
    db: Session, user: User, resource: Resource, activity: Activity | None = None
) -> list[ActivitySession]:
    """The user's sessions covering ``resource``, newest first."""
    query = (
        select(ActivitySession)
        .join(session_resources, session_resources.c.session_id == ActivitySession.id)
        .where(
            ActivitySession.requester_id == user.id,
            session_resources.c.resource_id == resource.id,
        )
        .order_by(ActivitySession.id.desc())
        .limit(50)
    )
    if activity is not None:
        query = query.where(ActivitySession.activity_id == activity.id)
    return list(db.scalars(query))


def authorize_connection(
    core: Pamcore,
    db: Session,
    user: User,
    resource: Resource,
    protocol: str,
    activity: Activity | None = None,
    session_id: int | None = None,
) -> ConnectionGrant:
    """Let ``user`` connect to ``resource`` over ``protocol``, or say in words why not;
    ``session_id`` pins the session (a browser terminal's token names one).

    Every grant is audited; so is every refusal (recorded after the unit rolls back).
    """
    now = core.now()
    try:
        grant = _authorize(core, db, user, resource, protocol, activity, session_id, now)
    except PolicyDenied as refusal:
        raise refusal.audited(
            user.username, "connection.refused", target=resource.name, protocol=protocol
        ) from None
    core.audit(
        db,
        user.username,
        "connection.authorized",
        target=resource.name,
        session_id=grant.session.id,
        protocol=protocol,
        account=grant.login_account,
    )
    return grant


def _authorize(
    core: Pamcore,
    db: Session,
    user: User,
    resource: Resource,
    protocol: str,
    activity: Activity | None,
    session_id: int | None,
    now: dt.datetime,
) -> ConnectionGrant:
    if not user.is_active:
        raise PolicyDenied(f"the account {user.username} is disabled")
    port = resource.port_for(protocol)
    if port is None:
        offered = ", ".join(p.name for p in resource.protocols) or "none"
        raise PolicyDenied(f"{resource.name} does not accept {protocol} (it offers: {offered})")
    candidates = sessions_on(db, user, resource, activity)
    if session_id is not None:
        candidates = [s for s in candidates if s.id == session_id]
        if not candidates:
            raise PolicyDenied(f"session #{session_id} does not give you {resource.name}")
    elif activity is None:
        _one_activity(user, resource, candidates)
    for session in candidates:
        if Status(session.status) in CONNECTABLE:
            if session.ends_at is not None and session.ends_at <= now:
                raise PolicyDenied(
                    f"session #{session.id} expired at {format_utc(session.ends_at, now)}"
                )
            password, key = login_credential_secrets(core, session)
            return ConnectionGrant(
                session=session,
                resource=resource,
                port=port,
                login_account=session.login_account,
                password=password,
                private_key=key,
                ends_at=session.ends_at or now,
            )
    open_ = [s for s in candidates if Status(s.status) in OPEN]
    if open_:
        raise PolicyDenied(waiting_reason(open_[0], now))
    if candidates:
        raise PolicyDenied(finished_reason(candidates[0], now))
    what = f"'{activity.name}' on {resource.name}" if activity else resource.name
    if not covered_resources(db, user, activity, [resource.id]):
        raise PolicyDenied(f"no access policy grants {user.username} {what}")
    raise PolicyDenied(f"you have no session for {what}; request one first")


def _one_activity(user: User, resource: Resource, sessions: list[ActivitySession]) -> None:
    """A connection naming only the resource must not guess between open sessions of
    different activities (they log in as different accounts): the user names one."""
    activities = sorted({s.activity.name for s in sessions if Status(s.status) in OPEN})
    if len(activities) > 1:
        logins = ", ".join(login_name(user.username, a, resource.name) for a in activities)
        raise PolicyDenied(
            f"you have sessions for {len(activities)} activities on {resource.name}; "
            f"log in as one of {logins}"
        )


@dataclass(frozen=True)
class Reveal:
    """A revealed password and how long the dashboard may show it."""

    session_id: int
    username: str
    password: Revealed
    seconds: int
    expires_at: dt.datetime
    purpose: str

    def __repr__(self) -> str:
        return f"Reveal(session={self.session_id}, purpose={self.purpose!r}, password='***')"


PURPOSES = ("view", "copy")


def reveal_password(
    core: Pamcore, db: Session, viewer: User, session_id: int, purpose: str = "view"
) -> Reveal:
    """Return the session's login password for ``seconds`` of display; always audited."""
    if purpose not in PURPOSES:
        raise ValidationError("purpose", f"must be one of {', '.join(PURPOSES)}")
    session = get_session(db, session_id)
    now = core.now()
    try:
        # Who may see comes first: someone else's session tells them nothing of its state.
        decision = core.hooks.password_display(session, viewer, purpose)
        if not decision.allow:
            raise PolicyDenied(decision.reason or "password display is not allowed")
        if Status(session.status) not in CONNECTABLE:
            why = (
                waiting_reason(session, now)
                if Status(session.status) in OPEN
                else finished_reason(session, now)
            )
            raise PolicyDenied(
                f"the password is only available while the session is Available or Active; {why}"
            )
        password, _key = login_credential_secrets(core, session)
        if password is None:
            raise PolicyDenied(
                f"session #{session.id} logs in with a key, not a password; nothing to reveal"
            )
    except PolicyDenied as refusal:
        raise refusal.audited(
            viewer.username, "password.refused", session_id=session.id, purpose=purpose
        ) from None
    seconds = decision.seconds or session.profile.password_view_seconds
    core.audit(
        db,
        viewer.username,
        "password.revealed",
        session_id=session.id,
        purpose=purpose,
        account=session.login_account,
        seconds=seconds,
    )
    return Reveal(
        session_id=session.id,
        username=session.login_account,
        password=password,
        seconds=seconds,
        expires_at=now + dt.timedelta(seconds=seconds),
        purpose=purpose,
    )
