"""Every change the admin pages can make: ``(area, change) -> run(core, db, actor, form)``,
each parsing its form and calling one service function, and returning what to tell the
admin. Secrets (passwords, keys) go from the form to the service and are never echoed."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.model import User
from pamcore.services import (
    activities,
    connections,
    directory,
    inventory,
    policies,
    profiles,
    signins,
)
from pamcore.web.admin.forms import Form

Change = Callable[[Pamcore, Session, User, Form], str]
CHANGES: dict[tuple[str, str], Change] = {}


def change(area: str, name: str) -> Callable[[Change], Change]:
    def register(run: Change) -> Change:
        CHANGES[(area, name)] = run
        return run

    return register


# -- users and groups -----------------------------------------------------------------------


@change("users", "create")
def create_user(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    user = directory.create_user(
        core,
        db,
        actor,
        form.text("username"),
        role=form.text("role") or "user",
        display_name=form.text("display_name"),
        email=form.text("email"),
        password=form.text("password") or None,
    )
    return f"created user {user.username}"


@change("users", "role")
def set_role(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    user = directory.set_role(core, db, actor, form.text("username"), form.text("role"))
    return f"{user.username} is now {user.role.value}"


@change("users", "password")
def set_password(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    user = directory.set_password(core, db, actor, form.text("username"), form.text("password"))
    return f"password of {user.username} set"


@change("users", "enable")
def enable_user(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    active = form.text("active") == "yes"
    user = directory.set_active(core, db, actor, form.text("username"), active)
    return f"{user.username} {'enabled' if active else 'disabled'}"


@change("users", "sign_out")
def sign_out_everywhere(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    user = signins.sign_out_everywhere(core, db, actor, form.text("username"))
    return f"{user.username} is signed out of every browser"


@change("users", "unlock")
def unlock_user(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    return f"{directory.unlock_user(core, db, actor, form.text('username')).username} unlocked"


@change("users", "delete")
def delete_user(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    directory.delete_user(core, db, actor, form.text("username"))
    return f"deleted user {form.text('username')}"


@change("users", "group_create")
def create_group(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    group = directory.create_group(
        core, db, actor, form.text("name"), form.text("description"), form.names("members")
    )
    return f"created group {group.name}"


@change("users", "member_add")
def add_member(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    group = directory.add_member(core, db, actor, form.text("group"), form.text("username"))
    return f"added {form.text('username')} to {group.name}"


@change("users", "member_remove")
def remove_member(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    group = directory.remove_member(core, db, actor, form.text("group"), form.text("username"))
    return f"removed {form.text('username')} from {group.name}"


@change("users", "group_delete")
def delete_group(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    directory.delete_group(core, db, actor, form.text("group"))
    return f"deleted group {form.text('group')}"


# -- resources and credentials --------------------------------------------------------------


@change("resources", "create")
def create_resource(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    resource = inventory.create_resource(
        core,
        db,
        actor,
        form.text("name"),
        form.text("address"),
        platform=form.text("platform") or "linux",
        protocols=form.names("protocols"),
        description=form.text("description"),
        host_key=form.text("host_key") or None,
        trust_on_first_use=form.flag("trust_on_first_use"),
    )
    return f"created resource {resource.name}"


@change("resources", "update")
def update_resource(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    changes = inventory.ResourceChanges(
        address=form.optional("address"),
        platform=form.optional("platform"),
        description=form.optional("description"),
        protocols=tuple(form.names("protocols")),
        host_key=form.optional("host_key"),
        trust_on_first_use=form.flag("trust_on_first_use"),
    )
    resource = inventory.update_resource(core, db, actor, form.text("resource"), changes)
    return f"updated resource {resource.name}"


@change("resources", "setting")
def set_setting(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    """An empty value removes the setting (the plugin's default applies again)."""
    plugin, _, key = form.text("setting").partition(".")
    name, value = form.text("resource"), form.text("value")
    if not value.strip():
        inventory.unset_setting(core, db, actor, name, plugin, key)
        return f"{plugin}.{key} removed from {name}"
    inventory.set_setting(core, db, actor, name, plugin, key, value)
    return f"{plugin}.{key} set on {name}"


@change("resources", "delete")
def delete_resource(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    inventory.delete_resource(core, db, actor, form.text("resource"))
    return f"deleted resource {form.text('resource')}"


@change("credentials", "create")
def create_credential(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    credential = inventory.create_credential(
        core,
        db,
        actor,
        form.text("name"),
        form.text("username"),
        resource=form.text("resource") or None,
        password=form.text("password") or None,
        private_key=form.text("private_key") or None,
        managed=form.flag("managed"),
        description=form.text("description"),
    )
    return f"created credential {credential.name}"


@change("credentials", "password")
def set_credential_password(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    name = form.text("credential")
    inventory.set_credential_password(core, db, actor, name, form.text("password"))
    return f"password of {name} replaced"


@change("credentials", "key")
def set_credential_key(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    name = form.text("credential")
    inventory.set_credential_key(core, db, actor, name, form.text("private_key"))
    return f"private key of {name} replaced"


@change("credentials", "delete")
def delete_credential(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    inventory.delete_credential(core, db, actor, form.text("credential"))
    return f"deleted credential {form.text('credential')}"


# -- activities, profiles, policies ---------------------------------------------------------


@change("activities", "create")
def create_activity(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    changes = activities.ActivityChanges(
        description=form.text("description"),
        kind=form.text("kind") or None,
        login_mode=form.text("login_mode") or None,
        login_template=form.text("login_template") or None,
        credential=form.text("credential") or None,
    )
    activity = activities.create_activity(core, db, actor, form.text("name"), changes)
    return f"created activity {activity.name}"


@change("activities", "action_add")
def add_action(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    action = activities.add_action(
        core,
        db,
        actor,
        form.text("activity"),
        form.text("phase"),
        form.text("action_type"),
        activities.parse_params(form.text("params")),
        form.number("position"),
    )
    return f"added {action.phase.value}-session action {action.action_type}"


@change("activities", "action_remove")
def remove_action(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    position = form.required_number("position")
    activity = activities.remove_action(
        core, db, actor, form.text("activity"), form.text("phase"), position
    )
    return f"removed {form.text('phase')}-session action {position} of {activity.name}"


@change("activities", "delete")
def delete_activity(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    activities.delete_activity(core, db, actor, form.text("activity"))
    return f"deleted activity {form.text('activity')}"


def _profile_changes(form: Form) -> profiles.ProfileChanges:
    numbers = {field: form.number(field) for field in profiles.RANGES}
    flags = {flag: form.flag(flag) for flag in profiles.PROFILE_FLAGS}
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


# -- live connections -----------------------------------------------------------------------


@change("connections", "terminate")
def terminate(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    connection_id = form.required_number("connection")
    connections.request_termination(core, db, actor, connection_id, form.text("reason"))
    return f"connection #{connection_id} will be closed by its proxy"
