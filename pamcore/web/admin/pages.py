"""The admin pages: each lists one area through its service and renders its forms; profiles
and policies have a list, a detail page in words and an edit form, like the user pages."""

from __future__ import annotations

from typing import Any

from flask import render_template
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from pamcore.cli.plugins import collect_report
from pamcore.model import ActionPhase, ActivityKind, LoginMode, Platform, Role
from pamcore.presenters import approval_sentence, policy_sentence, profile_rules, tier_words
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


def _pickers(db: Session) -> dict[str, list[str]]:
    """The names a form can pick from, by field."""
    return {
        "users": [u.username for u in directory.list_users(db)],
        "groups": [g.name for g in directory.list_groups(db)],
        "activities": [a.name for a in activities.list_activities(db)],
        "resources": [r.name for r in inventory.list_resources(db)],
        "profiles": [p.name for p in profiles.list_profiles(db)],
    }


def _policies_by_profile(db: Session) -> dict[str, list[str]]:
    used: dict[str, list[str]] = {}
    for policy in policies.list_policies(db):
        used.setdefault(policy.profile.name, []).append(policy.name)
    return used


@bp.get("/profiles", endpoint="profiles")
@role_required("admin")
def profiles_view() -> ResponseReturnValue:
    with current_core().reader() as db:
        return _render(
            "profiles.html",
            profiles=[(p, dict(profile_rules(p))) for p in profiles.list_profiles(db)],
            used_by=_policies_by_profile(db),
        )


@bp.get("/profiles/new")
@role_required("admin")
def profile_new() -> ResponseReturnValue:
    with current_core().reader() as db:
        return _render(
            "profile_edit.html",
            p=None,
            ranges=profiles.RANGES,
            **_pickers(db),
        )


@bp.get("/profile/<name>")
@role_required("admin")
def profile_detail(name: str) -> ResponseReturnValue:
    with current_core().reader() as db:
        profile = profiles.get_profile(db, name)
        return _render(
            "profile_detail.html",
            p=profile,
            rules=profile_rules(profile),
            used_by=_policies_by_profile(db).get(profile.name, []),
        )


@bp.get("/profile/<name>/edit")
@role_required("admin")
def profile_edit(name: str) -> ResponseReturnValue:
    with current_core().reader() as db:
        profile = profiles.get_profile(db, name)
        return _render(
            "profile_edit.html",
            p=profiles.profile_record(profile),
            tiers=[(t.position, tier_words(t)) for t in profile.tiers],
            max_tiers=profiles.MAX_TIERS,
            approval=approval_sentence(list(profile.tiers)),
            ranges=profiles.RANGES,
            **_pickers(db),
        )


@bp.get("/policies", endpoint="policies")
@role_required("admin")
def policies_view() -> ResponseReturnValue:
    with current_core().reader() as db:
        return _render(
            "policies.html",
            policies=[(p, policy_sentence(p)) for p in policies.list_policies(db)],
        )


@bp.get("/policies/new")
@role_required("admin")
def policy_new() -> ResponseReturnValue:
    with current_core().reader() as db:
        return _render("policy_edit.html", p=None, **_pickers(db))


@bp.get("/policy/<name>")
@role_required("admin")
def policy_detail(name: str) -> ResponseReturnValue:
    with current_core().reader() as db:
        policy = policies.get_policy(db, name)
        return _render(
            "policy_detail.html",
            p=policies.policy_record(policy),
            sentence=policy_sentence(policy),
            approval=approval_sentence(list(policy.profile.tiers)),
        )


@bp.get("/policy/<name>/edit")
@role_required("admin")
def policy_edit(name: str) -> ResponseReturnValue:
    with current_core().reader() as db:
        policy = policies.get_policy(db, name)
        return _render("policy_edit.html", p=policies.policy_record(policy), **_pickers(db))


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
    core = current_core()
    return _render("plugins.html", report=collect_report(core.plugins, core.config))


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
