"""The admin pages: each lists one area through its service and renders its forms."""

from __future__ import annotations

from typing import Any

from flask import render_template
from flask.typing import ResponseReturnValue

from pamcore.cli.plugins import collect_report
from pamcore.model import ActionPhase, ActivityKind, LoginMode, Platform, Role
from pamcore.services import (
    activities,
    connections,
    directory,
    inventory,
    policies,
    profiles,
    vault_keys,
)
from pamcore.web.admin import bp
from pamcore.web.auth import role_required
from pamcore.web.context import acting_user, current_core


def _render(template: str, **context: Any) -> str:
    return render_template(f"admin/{template}", **context)


@bp.get("/")
@role_required("admin")
def index() -> ResponseReturnValue:
    return _render("index.html")


@bp.get("/users")
@role_required("admin")
def users() -> ResponseReturnValue:
    with current_core().reader() as db:
        return _render(
            "users.html",
            users=[directory.user_record(u) for u in directory.list_users(db)],
            groups=[directory.group_record(g) for g in directory.list_groups(db)],
            roles=[r.value for r in Role],
        )


@bp.get("/resources")
@role_required("admin")
def resources() -> ResponseReturnValue:
    core = current_core()
    with core.reader() as db:
        return _render(
            "resources.html",
            resources=[inventory.resource_record(r) for r in inventory.list_resources(db)],
            settings=inventory.available_settings(core),
            platforms=[p.value for p in Platform],
        )


@bp.get("/credentials")
@role_required("admin")
def credentials() -> ResponseReturnValue:
    with current_core().reader() as db:
        return _render(
            "credentials.html",
            credentials=[inventory.credential_record(c) for c in inventory.list_credentials(db)],
            resources=[r.name for r in inventory.list_resources(db)],
        )


@bp.get("/activities", endpoint="activities")
@role_required("admin")
def activities_view() -> ResponseReturnValue:
    core = current_core()
    with core.reader() as db:
        return _render(
            "activities.html",
            activities=[activities.activity_record(a) for a in activities.list_activities(db)],
            credentials=[c.name for c in inventory.list_credentials(db)],
            action_types=sorted(core.hooks.actions().values(), key=lambda a: a.name),
            kinds=[k.value for k in ActivityKind],
            login_modes=[m.value for m in LoginMode],
            phases=[p.value for p in ActionPhase],
        )


@bp.get("/profiles", endpoint="profiles")
@role_required("admin")
def profiles_view() -> ResponseReturnValue:
    with current_core().reader() as db:
        return _render(
            "profiles.html",
            profiles=[profiles.profile_record(p) for p in profiles.list_profiles(db)],
            ranges=profiles.RANGES,
            flags=profiles.PROFILE_FLAGS,
            users=[u.username for u in directory.list_users(db)],
            groups=[g.name for g in directory.list_groups(db)],
        )


@bp.get("/policies", endpoint="policies")
@role_required("admin")
def policies_view() -> ResponseReturnValue:
    with current_core().reader() as db:
        return _render(
            "policies.html",
            policies=[policies.policy_record(p) for p in policies.list_policies(db)],
            profiles=[p.name for p in profiles.list_profiles(db)],
            users=[u.username for u in directory.list_users(db)],
            groups=[g.name for g in directory.list_groups(db)],
            activities=[a.name for a in activities.list_activities(db)],
            resources=[r.name for r in inventory.list_resources(db)],
        )


@bp.get("/connections", endpoint="connections")
@role_required("admin")
def connections_view() -> ResponseReturnValue:
    core = current_core()
    with core.reader() as db:
        live = connections.list_connections(db, acting_user(db))
        return _render("connections.html", connections=live, now=core.now())


@bp.get("/plugins")
@role_required("admin")
def plugins() -> ResponseReturnValue:
    return _render("plugins.html", report=collect_report(current_core().plugins))


@bp.get("/vault")
@role_required("admin")
def vault() -> ResponseReturnValue:
    core = current_core()
    with core.reader() as db:
        actor = acting_user(db)
        keys = vault_keys.key_uses(core, actor)
        lost = vault_keys.undecryptable_secrets(core, actor)
    return _render(
        "vault.html", keys=keys, lost=lost, source=core.vault.source or "PAMCORE_MASTER_KEY"
    )
