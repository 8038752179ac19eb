"""Access policies: who may run which activities on which resources, under which
connection profile.

Activities and profiles live in their own modules; a policy only ties them together, and
is checked at save time so it can always be applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.errors import ValidationError
from pamcore.model import (
    AccessPolicy,
    Activity,
    ConnectionProfile,
    Group,
    Resource,
    User,
)
from pamcore.presenters import policy_record
from pamcore.services.common import Actor, by_name, require_admin
from pamcore.services.directory import unique_name

#: What a policy names that can be placed in policies from its own page.
Granted = Literal["activities", "resources"]


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


def policies_by(db: Session, field: Granted) -> dict[str, list[AccessPolicy]]:
    """The policies naming each activity (``field="activities"``) or resource, by its name."""
    found: dict[str, list[AccessPolicy]] = {}
    for policy in list_policies(db):
        for item in getattr(policy, field):
            found.setdefault(item.name, []).append(policy)
    return found


def set_policies_naming(
    core: Pamcore, db: Session, actor: Actor, field: Granted, name: str, wanted: Sequence[str]
) -> list[AccessPolicy]:
    """Make exactly the ``wanted`` policies name one activity (``field="activities"``) or
    resource, from that item's own page. Each policy that gains or loses it goes through
    :func:`update_policy`, so the same rules hold and each change is audited; one that
    would be left naming nothing is refused and nothing changes. Returns those changed."""
    require_admin(actor, "change access policies")
    item = by_name(db, Activity if field == "activities" else Resource, name)
    chosen = {get_policy(db, n).name for n in wanted}
    changed = []
    for policy in list_policies(db):
        names = [x.name for x in getattr(policy, field)]
        if (policy.name in chosen) == (item.name in names):
            continue
        names = [n for n in names if n != item.name] if item.name in names else [*names, item.name]
        try:
            changes = PolicyChanges(**{field: names})
            changed.append(update_policy(core, db, actor, policy.name, changes))
        except ValidationError as exc:
            raise ValidationError("policies", f"'{policy.name}': {exc.reason}") from None
    return changed


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


def _policy_summary(policy: AccessPolicy) -> dict[str, Any]:
    record = policy_record(policy)
    del record["name"]
    return record
