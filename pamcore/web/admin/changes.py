"""The table of every change the admin pages can make, ``(area, change) -> run(core, db,
actor, form)``, each parsing its form and calling one service function, and returning what to
tell the admin; it holds the changes of profiles, policies and live connections, and the area
modules (users, resources, credentials, activities) register theirs with
:func:`change`. Secrets (passwords, keys) go from the form to the service and are never
echoed."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.model import User
from pamcore.model.policy import PROFILE_FLAGS, PROFILE_RANGES
from pamcore.services import (
    connections,
    policies,
    profiles,
)
from pamcore.web.admin.forms import Form

Change = Callable[[Pamcore, Session, User, Form], str]
CHANGES: dict[tuple[str, str], Change] = {}


def change(area: str, name: str) -> Callable[[Change], Change]:
    def register(run: Change) -> Change:
        CHANGES[(area, name)] = run
        return run

    return register


# -- profiles and policies ---------------------------------------------------------


def _profile_changes(form: Form) -> profiles.ProfileChanges:
    numbers = {field: form.number(field) for field in PROFILE_RANGES}
    flags = {flag: form.flag(flag) for flag in PROFILE_FLAGS}
    return profiles.ProfileChanges(
        description=form.text("description"),
        escalation_user=form.optional("escalation_user"),
        escalation_group=form.optional("escalation_group"),
        **numbers,
        **flags,
    )


@change("profiles", "create")
def create_profile(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    profile = profiles.create_profile(core, db, actor, form.text("name"), _profile_changes(form))
    return f"created connection profile {profile.name}"


@change("profiles", "update")
def update_profile(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    name = form.text("profile")
    profile = profiles.update_profile(core, db, actor, name, _profile_changes(form))
    return f"updated connection profile {profile.name}"


@change("profiles", "tier_add")
def add_tier(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    tier = profiles.add_tier(
        core,
        db,
        actor,
        form.text("profile"),
        approvals_required=form.number("approvals_required") or 1,
        users=form.names("users"),
        groups=form.names("groups"),
    )
    return f"added approval tier {tier.position} to {form.text('profile')}"


@change("profiles", "tier_remove")
def remove_tier(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    position = form.required_number("position")
    profile = profiles.remove_tier(core, db, actor, form.text("profile"), position)
    return f"removed approval tier {position} from {profile.name}"


@change("profiles", "delete")
def delete_profile(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    profiles.delete_profile(core, db, actor, form.text("profile"))
    return f"deleted connection profile {form.text('profile')}"


def _policy_changes(form: Form) -> policies.PolicyChanges:
    return policies.PolicyChanges(
        profile=form.text("profile") or None,
        users=form.names("users"),
        groups=form.names("groups"),
        activities=form.names("activities"),
        resources=form.names("resources"),
    )


@change("policies", "create")
def create_policy(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    policy = policies.create_policy(core, db, actor, form.text("name"), _policy_changes(form))
    return f"created access policy {policy.name}"


@change("policies", "update")
def update_policy(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    """The lists replace the policy's (an empty one is refused by the service)."""
    name = form.text("policy")
    policy = policies.update_policy(core, db, actor, name, _policy_changes(form))
    return f"updated access policy {policy.name}"


@change("policies", "enable")
def enable_policy(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    enabled = form.text("enabled") == "yes"
    policy = policies.set_policy_enabled(core, db, actor, form.text("policy"), enabled)
    return f"access policy {policy.name} {'enabled' if enabled else 'disabled'}"


@change("policies", "delete")
def delete_policy(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    policies.delete_policy(core, db, actor, form.text("policy"))
    return f"deleted access policy {form.text('policy')}"


def policies_naming(field: policies.Granted, item: str) -> Change:
    """The change an activity's or resource's edit page sends to set which access policies
    name it; the form names the item in the field ``item`` and the policies in ``policies``."""

    def run(core: Pamcore, db: Session, actor: User, form: Form) -> str:
        name = form.text(item)
        wanted = form.names("policies")
        changed = policies.set_policies_naming(core, db, actor, field, name, wanted)
        if not changed:
            return f"the access policies naming {name} are unchanged"
        return f"updated access policies {', '.join(p.name for p in changed)}"

    return run


# -- live connections -----------------------------------------------------------------------


@change("connections", "terminate")
def terminate(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    connection_id = form.required_number("connection")
    connections.request_termination(core, db, actor, connection_id, form.text("reason"))
    return f"connection #{connection_id} will be closed by its proxy"
