"""``pamcore activities``, ``pamcore profiles`` and ``pamcore policies``: what users may do,
under which session rules, on which resources."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from pamcore.cli.context import CliContext, pass_cli, with_json
from pamcore.cli.output import emit_message, emit_record, emit_rows, split_names
from pamcore.cli.users import confirm_delete
from pamcore.model import ActionPhase, ActivityKind, LoginMode
from pamcore.presenters import activity_record, policy_record, profile_record
from pamcore.services import activities as activity_svc
from pamcore.services import policies as policy_svc
from pamcore.services import profiles as profile_svc
from pamcore.services.common import CONSOLE

F = TypeVar("F", bound=Callable[..., Any])

ACTIVITY_COLUMNS = ("name", "kind", "login_mode", "credential", "pre_actions", "post_actions")
PROFILE_COLUMNS = (
    "name",
    "max_duration_minutes",
    "extension_minutes",
    "extension_max_count",
    "approval_tiers",
    "allow_view_password",
)
POLICY_COLUMNS = ("name", "enabled", "profile", "users", "groups", "activities", "resources")

phase_choice = click.Choice([p.value for p in ActionPhase])


def _options(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """Apply the same options to ``create`` and ``update``."""

    def apply(f: F) -> F:
        for decorator in reversed(decorators):
            f = decorator(f)
        return f

    return apply


# -- activities -----------------------------------------------------------------------------

activity_options = _options(
    click.option("--description"),
    click.option("--kind", type=click.Choice([k.value for k in ActivityKind])),
    click.option(
        "--login-mode",
        type=click.Choice([m.value for m in LoginMode]),
        help="ephemeral: a new account per session; managed: the activity's credential.",
    ),
    click.option("--login-template", help="Ephemeral account name, e.g. '{user}-{random}'."),
    click.option("--credential", help="The credential to log in with ('' removes it)."),
)


@click.group()
def activities() -> None:
    """What users may do on resources, with pre- and post-session actions."""


@activities.command("list")
@with_json
@pass_cli
def list_activities(cli: CliContext) -> None:
    """List activities."""
    with cli.core.reader() as db:
        rows = [activity_record(a) for a in activity_svc.list_activities(db)]
    emit_rows(rows, ACTIVITY_COLUMNS, cli.as_json, empty="no activities yet")


@activities.command("show")
@click.argument("name")
@with_json
@pass_cli
def show_activity(cli: CliContext, name: str) -> None:
    """Show an activity and its actions in order."""
    with cli.core.reader() as db:
        record = activity_record(activity_svc.get_activity(db, name))
    emit_record(record, cli.as_json)


@activities.command("create")
@click.argument("name")
@activity_options
@with_json
@pass_cli
def create_activity(cli: CliContext, name: str, **fields: Any) -> None:
    """Create an activity (ephemeral accounts unless a credential is given)."""
    with cli.core.unit() as db:
        activity = activity_svc.create_activity(
            cli.core, db, CONSOLE, name, activity_svc.ActivityChanges(**fields)
        )
        record = activity_record(activity)
    emit_message(f"created activity {record['name']}", cli.as_json, activity=record)


@activities.command("update")
@click.argument("name")
@click.option("--name", "new_name", help="Rename the activity.")
@activity_options
@with_json
@pass_cli
def update_activity(cli: CliContext, name: str, new_name: str | None, **fields: Any) -> None:
    """Change an activity."""
    changes = activity_svc.ActivityChanges(name=new_name, **fields)
    with cli.core.unit() as db:
        record = activity_record(activity_svc.update_activity(cli.core, db, CONSOLE, name, changes))
    emit_message(f"updated activity {record['name']}", cli.as_json, activity=record)


@activities.command("delete")
@click.argument("name")
@confirm_delete
@with_json
@pass_cli
def delete_activity(cli: CliContext, name: str) -> None:
    """Delete an activity no session used."""
    with cli.core.unit() as db:
        activity_svc.delete_activity(cli.core, db, CONSOLE, name)
    emit_message(f"deleted activity {name}", cli.as_json, name=name)


@activities.command("add-action")
@click.argument("name")
@click.argument("phase", type=phase_choice)
@click.argument("action_type")
@click.option("--params", default="", help='JSON object, e.g. \'{"message": "hello"}\'.')
@click.option("--position", type=int, help="1-based place among the phase's actions.")
@with_json
@pass_cli
def add_action(
    cli: CliContext, name: str, phase: str, action_type: str, params: str, position: int | None
) -> None:
    """Add a pre- or post-session action (`pamcore actions` lists the types and their --params)."""
    parsed = activity_svc.parse_params(params)
    with cli.core.unit() as db:
        activity_svc.add_action(cli.core, db, CONSOLE, name, phase, action_type, parsed, position)
        record = activity_record(activity_svc.get_activity(db, name))
    emit_message(
        f"{record['name']}: {phase} action {action_type} added", cli.as_json, activity=record
    )


@activities.command("remove-action")
@click.argument("name")
@click.argument("phase", type=phase_choice)
@click.argument("position", type=int)
@with_json
@pass_cli
def remove_action(cli: CliContext, name: str, phase: str, position: int) -> None:
    """Remove the pre- or post-session action at POSITION (as 'show' numbers them)."""
    with cli.core.unit() as db:
        record = activity_record(
            activity_svc.remove_action(cli.core, db, CONSOLE, name, phase, position)
        )
    emit_message(
        f"{record['name']}: {phase} action {position} removed", cli.as_json, activity=record
    )


# -- connection profiles --------------------------------------------------------------------


def _flag(name: str, help_text: str) -> Callable[[F], F]:
    return click.option(f"--{name}/--no-{name}", default=None, help=help_text)


profile_options = _options(
    click.option("--description"),
    click.option("--max-duration", "max_duration_minutes", type=int, help="Minutes (1-10080)."),
    _flag("extension", "Allow extending the session."),
    click.option("--extension-minutes", type=int, help="Increment per extension (1-1440)."),
    click.option("--max-extensions", "extension_max_count", type=int, help="0-20."),
    click.option("--warning-minutes", type=int, help="Extension window before the end (1-60)."),
    _flag("requester-may-approve", "Let requesters approve their own sessions."),
    _flag(
        "approver-may-decide-several-tiers",
        "Let one person decide more than one tier of a session (default: one tier each).",
    ),
    click.option("--escalation-minutes", type=int, help="Escalate after (1-10080; 0: never)."),
    click.option("--escalation-user", help="Fallback approver ('' removes)."),
    click.option("--escalation-group", help="Fallback approver group ('' removes)."),
    _flag("notes-required", "Requests must carry notes."),
    _flag("ticket-required", "Requests must carry a ticket number."),
    _flag("view-password", "Users may view the session password."),
    _flag("copy-password", "Users may copy the session password."),
    click.option("--view-seconds", "password_view_seconds", type=int, help="5-300."),
    _flag("recording", "Record sessions."),
    _flag(
        "clipboard-redirection",
        "Remote desktop clients share their clipboard with the target (default: off).",
    ),
)


def _profile_changes(fields: dict[str, Any], **extra: Any) -> profile_svc.ProfileChanges:
    fields = dict(fields)
    fields["extension_enabled"] = fields.pop("extension")
    fields["allow_view_password"] = fields.pop("view_password")
    fields["allow_copy_password"] = fields.pop("copy_password")
    return profile_svc.ProfileChanges(**fields, **extra)


@click.group()
def profiles() -> None:
    """Connection profiles: session length, extension, approval, password display."""


@profiles.command("list")
@with_json
@pass_cli
def list_profiles(cli: CliContext) -> None:
    """List connection profiles."""
    with cli.core.reader() as db:
        rows = [profile_record(p) for p in profile_svc.list_profiles(db)]
    emit_rows(rows, PROFILE_COLUMNS, cli.as_json, empty="no connection profiles yet")


@profiles.command("show")
@click.argument("name")
@with_json
@pass_cli
def show_profile(cli: CliContext, name: str) -> None:
    """Show every rule of a connection profile."""
    with cli.core.reader() as db:
        record = profile_record(profile_svc.get_profile(db, name))
    emit_record(record, cli.as_json)


@profiles.command("create")
@click.argument("name")
@profile_options
@with_json
@pass_cli
def create_profile(cli: CliContext, name: str, **fields: Any) -> None:
    """Create a connection profile. Without options: no approval (until a tier is added),
    120-minute sessions, extensions on (2 of 30 minutes, offered in the last 5), password
    not viewable nor copyable (20 s when it is), recording on, clipboard off, notes and
    ticket optional, no escalation."""
    with cli.core.unit() as db:
        profile = profile_svc.create_profile(cli.core, db, CONSOLE, name, _profile_changes(fields))
        record = profile_record(profile)
    emit_message(f"created connection profile {record['name']}", cli.as_json, profile=record)


@profiles.command("update")
@click.argument("name")
@click.option("--name", "new_name", help="Rename the profile.")
@profile_options
@with_json
@pass_cli
def update_profile(cli: CliContext, name: str, new_name: str | None, **fields: Any) -> None:
    """Change a connection profile."""
    changes = _profile_changes(fields, name=new_name)
    with cli.core.unit() as db:
        record = profile_record(profile_svc.update_profile(cli.core, db, CONSOLE, name, changes))
    emit_message(f"updated connection profile {record['name']}", cli.as_json, profile=record)


@profiles.command("delete")
@click.argument("name")
@confirm_delete
@with_json
@pass_cli
def delete_profile(cli: CliContext, name: str) -> None:
    """Delete a profile no policy or session uses."""
    with cli.core.unit() as db:
        profile_svc.delete_profile(cli.core, db, CONSOLE, name)
    emit_message(f"deleted connection profile {name}", cli.as_json, name=name)


@profiles.command("add-tier")
@click.argument("name")
@click.option("--approvals", "approvals_required", type=int, default=1, show_default=True)
@click.option("--user", "users", multiple=True, help="An approving user (repeat, or a,b).")
@click.option("--group", "groups", multiple=True, help="An approving group (repeat).")
@with_json
@pass_cli
def add_tier(
    cli: CliContext,
    name: str,
    approvals_required: int,
    users: tuple[str, ...],
    groups: tuple[str, ...],
) -> None:
    """Add an approval tier (up to 3, decided in order)."""
    with cli.core.unit() as db:
        tier = profile_svc.add_tier(
            cli.core,
            db,
            CONSOLE,
            name,
            approvals_required=approvals_required,
            users=split_names(users),
            groups=split_names(groups),
        )
        record = profile_record(tier.profile)
    emit_message(
        f"{record['name']}: approval tier {tier.position} added", cli.as_json, profile=record
    )


@profiles.command("remove-tier")
@click.argument("name")
@click.argument("position", type=int)
@with_json
@pass_cli
def remove_tier(cli: CliContext, name: str, position: int) -> None:
    """Remove approval tier POSITION; later tiers move up."""
    with cli.core.unit() as db:
        record = profile_record(profile_svc.remove_tier(cli.core, db, CONSOLE, name, position))
    emit_message(f"{record['name']}: approval tier {position} removed", cli.as_json, profile=record)


# -- access policies ------------------------------------------------------------------------

policy_options = _options(
    click.option("--profile", help="The connection profile sessions run under."),
    click.option("--user", "users", multiple=True, help="A user granted (repeat, or a,b)."),
    click.option("--group", "groups", multiple=True, help="A group granted (repeat)."),
    click.option("--activity", "activities", multiple=True, help="An activity granted."),
    click.option("--resource", "resources", multiple=True, help="A resource it applies to."),
)


def _policy_changes(fields: dict[str, Any], **extra: Any) -> policy_svc.PolicyChanges:
    """Lists given replace the policy's; lists not given stay as they are."""
    lists = {
        k: split_names(fields[k]) or None for k in ("users", "groups", "activities", "resources")
    }
    return policy_svc.PolicyChanges(profile=fields["profile"], **lists, **extra)


@click.group()
def policies() -> None:
    """Access policies: users and groups x activities x resources -> connection profile."""


@policies.command("list")
@with_json
@pass_cli
def list_policies(cli: CliContext) -> None:
    """List access policies."""
    with cli.core.reader() as db:
        rows = [policy_record(p) for p in policy_svc.list_policies(db)]
    emit_rows(rows, POLICY_COLUMNS, cli.as_json, empty="no access policies yet")


@policies.command("show")
@click.argument("name")
@with_json
@pass_cli
def show_policy(cli: CliContext, name: str) -> None:
    """Show what an access policy grants."""
    with cli.core.reader() as db:
        record = policy_record(policy_svc.get_policy(db, name))
    emit_record(record, cli.as_json)


@policies.command("create")
@click.argument("name")
@policy_options
@click.option("--disabled", is_flag=True, help="Create it switched off.")
@with_json
@pass_cli
def create_policy(cli: CliContext, name: str, disabled: bool, **fields: Any) -> None:
    """Grant users or groups activities on resources under a connection profile."""
    changes = _policy_changes(fields, enabled=not disabled)
    with cli.core.unit() as db:
        record = policy_record(policy_svc.create_policy(cli.core, db, CONSOLE, name, changes))
    emit_message(f"created access policy {record['name']}", cli.as_json, policy=record)


@policies.command("update")
@click.argument("name")
@click.option("--name", "new_name", help="Rename the policy.")
@policy_options
@with_json
@pass_cli
def update_policy(cli: CliContext, name: str, new_name: str | None, **fields: Any) -> None:
    """Change an access policy; each list option given replaces that list."""
    changes = _policy_changes(fields, name=new_name)
    with cli.core.unit() as db:
        record = policy_record(policy_svc.update_policy(cli.core, db, CONSOLE, name, changes))
    emit_message(f"updated access policy {record['name']}", cli.as_json, policy=record)


@policies.command("enable")
@click.argument("name")
@with_json
@pass_cli
def enable_policy(cli: CliContext, name: str) -> None:
    """Switch an access policy on."""
    with cli.core.unit() as db:
        policy = policy_svc.set_policy_enabled(cli.core, db, CONSOLE, name, True)
        record = policy_record(policy)
    emit_message(f"access policy {record['name']} enabled", cli.as_json, policy=record)


@policies.command("disable")
@click.argument("name")
@with_json
@pass_cli
def disable_policy(cli: CliContext, name: str) -> None:
    """Switch an access policy off; new requests under it are refused."""
    with cli.core.unit() as db:
        policy = policy_svc.set_policy_enabled(cli.core, db, CONSOLE, name, False)
        record = policy_record(policy)
    emit_message(f"access policy {record['name']} disabled", cli.as_json, policy=record)


@policies.command("delete")
@click.argument("name")
@confirm_delete
@with_json
@pass_cli
def delete_policy(cli: CliContext, name: str) -> None:
    """Delete an access policy (its sessions keep their history)."""
    with cli.core.unit() as db:
        policy_svc.delete_policy(cli.core, db, CONSOLE, name)
    emit_message(f"deleted access policy {name}", cli.as_json, name=name)
