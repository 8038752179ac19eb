"""Small builders for test data: a user, a resource, a profile, a policy in one line each.

They write ORM rows directly (fast, and independent of the admin services under test).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.lifecycle import Status
from pamcore.model import (
    AccessPolicy,
    ActionPhase,
    Activity,
    ActivityAction,
    ActivityKind,
    ActivitySession,
    ApprovalTier,
    ConnectionProfile,
    Credential,
    Group,
    LoginMode,
    Platform,
    Resource,
    ResourceProtocol,
    Role,
    User,
)
from pamcore.model.sessions import session_resources
from pamcore.passwords import hash_password


def make_user(
    db: Session,
    username: str,
    role: Role = Role.USER,
    password: str | None = None,
    groups: Sequence[Group] = (),
) -> User:
    user = User(
        username=username,
        display_name=username.title(),
        role=role,
        password_hash=hash_password(password) if password else None,
        groups=list(groups),
    )
    db.add(user)
    db.flush()
    return user


def make_group(db: Session, name: str, members: Sequence[User] = ()) -> Group:
    group = Group(name=name, members=list(members))
    db.add(group)
    db.flush()
    return group


def make_resource(
    db: Session,
    name: str,
    address: str = "127.0.0.1",
    protocols: dict[str, int] | None = None,
    platform: Platform = Platform.LINUX,
    **fields: Any,
) -> Resource:
    resource = Resource(name=name, address=address, platform=platform, **fields)
    resource.protocols = [
        ResourceProtocol(name=p, port=port) for p, port in (protocols or {"ssh": 22}).items()
    ]
    db.add(resource)
    db.flush()
    return resource


def make_credential(
    core: Pamcore,
    db: Session,
    name: str,
    username: str,
    password: str | None = None,
    private_key: str | None = None,
    resource: Resource | None = None,
    managed: bool = True,
) -> Credential:
    cred = Credential(name=name, username=username, resource=resource, managed=managed)
    if password:
        cred.password_secret = core.vault.store(db, password)
    if private_key:
        cred.private_key_secret = core.vault.store(db, private_key)
    db.add(cred)
    db.flush()
    return cred


def make_activity(
    db: Session,
    name: str,
    kind: ActivityKind = ActivityKind.RESOURCE,
    login_mode: LoginMode = LoginMode.MANAGED,
    credential: Credential | None = None,
    pre: Sequence[tuple[str, dict[str, Any]]] = (),
    post: Sequence[tuple[str, dict[str, Any]]] = (),
    login_template: str = "{user}-{random}",
) -> Activity:
    activity = Activity(
        name=name,
        kind=kind,
        login_mode=login_mode,
        credential=credential,
        login_template=login_template,
    )
    for phase, steps in ((ActionPhase.PRE, pre), (ActionPhase.POST, post)):
        for position, (action_type, params) in enumerate(steps, start=1):
            activity.actions.append(
                ActivityAction(
                    phase=phase, position=position, action_type=action_type, params=params
                )
            )
    db.add(activity)
    db.flush()
    return activity


def make_profile(
    db: Session,
    name: str,
    tiers: Sequence[tuple[int, Sequence[User], Sequence[Group]]] = (),
    **fields: Any,
) -> ConnectionProfile:
    """``tiers``: (approvals required, users, groups) per tier, in order."""
    profile = ConnectionProfile(name=name, **fields)
    for position, (required, users, groups) in enumerate(tiers, start=1):
        profile.tiers.append(
            ApprovalTier(
                position=position,
                approvals_required=required,
                users=list(users),
                groups=list(groups),
            )
        )
    db.add(profile)
    db.flush()
    return profile


def make_policy(
    db: Session,
    name: str,
    profile: ConnectionProfile,
    activities: Sequence[Activity],
    resources: Sequence[Resource],
    users: Sequence[User] = (),
    groups: Sequence[Group] = (),
) -> AccessPolicy:
    policy = AccessPolicy(
        name=name,
        profile=profile,
        activities=list(activities),
        resources=list(resources),
        users=list(users),
        groups=list(groups),
    )
    db.add(policy)
    db.flush()
    return policy


def make_sessions(
    db: Session,
    count: int,
    requester: User,
    activity: Activity,
    profile: ConnectionProfile,
    resources: Sequence[Resource],
    start: dt.datetime,
    status: Status = Status.SCHEDULED,
) -> list[int]:
    """``count`` sessions in two bulk INSERTs (rows, then their resources), for listings
    at scale; no lifecycle runs. Their ids, in insertion order."""
    row = {
        "requester_id": requester.id,
        "activity_id": activity.id,
        "profile_id": profile.id,
        "status": status,
        "scheduled_start": start,
        "created_at": start,
        "version": 1,
    }
    ids = list(
        db.scalars(
            insert(ActivitySession).returning(ActivitySession.id, sort_by_parameter_order=True),
            [row] * count,
        )
    )
    links = [{"session_id": i, "resource_id": r.id} for i in ids for r in resources]
    if links:
        db.execute(insert(session_resources), links)
    return ids
