"""The admin pages of the areas without a module of their own: the index, connection
profiles and access policies (a list, a detail page in words and an edit form, like the user
pages), live connections, plugins and the vault. Users, groups, resources, credentials and
activities live in modules named for them."""

from __future__ import annotations

from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from pamcore.cli.plugins import collect_report
from pamcore.model.policy import PROFILE_RANGES
from pamcore.presenters import (
    approval_sentence,
    policy_record,
    policy_sentence,
    profile_record,
    profile_rules,
    tier_words,
)
from pamcore.services import (
    connections,
    policies,
    profiles,
    vault_keys,
)
from pamcore.web.admin import bp
from pamcore.web.admin.rendering import pickers, render
from pamcore.web.auth import role_required
from pamcore.web.context import acting_user, current_core


@bp.get("/")
@role_required("admin")
def index() -> ResponseReturnValue:
    return render("index.html")


def _policies_by_profile(db: Session) -> dict[str, list[str]]:
    used: dict[str, list[str]] = {}
    for policy in policies.list_policies(db):
        used.setdefault(policy.profile.name, []).append(policy.name)
    return used


@bp.get("/profiles", endpoint="profiles")
@role_required("admin")
def profiles_view() -> ResponseReturnValue:
    with current_core().reader() as db:
        return render(
            "profiles.html",
            profiles=[(p, dict(profile_rules(p))) for p in profiles.list_profiles(db)],
            used_by=_policies_by_profile(db),
        )


@bp.get("/profiles/new")
@role_required("admin")
def profile_new() -> ResponseReturnValue:
    with current_core().reader() as db:
        return render(
            "profile_edit.html",
            p=None,
            ranges=PROFILE_RANGES,
            **pickers(db),
        )


@bp.get("/profile/<name>")
@role_required("admin")
def profile_detail(name: str) -> ResponseReturnValue:
    with current_core().reader() as db:
        profile = profiles.get_profile(db, name)
        return render(
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
        return render(
            "profile_edit.html",
            p=profile_record(profile),
            tiers=[(t.position, tier_words(t)) for t in profile.tiers],
            max_tiers=profiles.MAX_TIERS,
            approval=approval_sentence(list(profile.tiers)),
            ranges=PROFILE_RANGES,
            **pickers(db),
        )


@bp.get("/policies", endpoint="policies")
@role_required("admin")
def policies_view() -> ResponseReturnValue:
    with current_core().reader() as db:
        return render(
            "policies.html",
            policies=[(p, policy_sentence(p)) for p in policies.list_policies(db)],
        )


@bp.get("/policies/new")
@role_required("admin")
def policy_new() -> ResponseReturnValue:
    with current_core().reader() as db:
        return render("policy_edit.html", p=None, **pickers(db))


@bp.get("/policy/<name>")
@role_required("admin")
def policy_detail(name: str) -> ResponseReturnValue:
    with current_core().reader() as db:
        policy = policies.get_policy(db, name)
        return render(
            "policy_detail.html",
            p=policy_record(policy),
            sentence=policy_sentence(policy),
            approval=approval_sentence(list(policy.profile.tiers)),
        )


@bp.get("/policy/<name>/edit")
@role_required("admin")
def policy_edit(name: str) -> ResponseReturnValue:
    with current_core().reader() as db:
        policy = policies.get_policy(db, name)
        return render("policy_edit.html", p=policy_record(policy), **pickers(db))


@bp.get("/connections", endpoint="connections")
@role_required("admin")
def connections_view() -> ResponseReturnValue:
    core = current_core()
    with core.reader() as db:
        live = connections.list_connections(db, acting_user(db))
        return render("connections.html", connections=live, now=core.now())


@bp.get("/plugins")
@role_required("admin")
def plugins() -> ResponseReturnValue:
    core = current_core()
    return render("plugins.html", report=collect_report(core.plugins, core.config))


@bp.get("/vault")
@role_required("admin")
def vault() -> ResponseReturnValue:
    core = current_core()
    with core.reader() as db:
        actor = acting_user(db)
        keys = vault_keys.key_uses(core, actor)
        lost = vault_keys.undecryptable_secrets(core, actor)
    return render(
        "vault.html", keys=keys, lost=lost, source=core.vault.source or "PAMCORE_MASTER_KEY"
    )
