"""Admin: activities and their pre- and post-session actions, like the profile pages: a
short list, a detail page saying in words how an activity logs in, which actions run
around its sessions and which policies grant it, and an edit form; and the changes they
send."""

from __future__ import annotations

from typing import Any

from flask import request
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.model import ActionPhase, Activity, ActivityKind, LoginMode, User
from pamcore.presenters import action_words, activity_record, activity_rules, policy_sentence
from pamcore.registry import ActionType
from pamcore.services import activities, inventory, policies
from pamcore.web.admin import bp
from pamcore.web.admin.changes import change, policies_naming
from pamcore.web.admin.forms import Form
from pamcore.web.admin.rendering import render
from pamcore.web.auth import role_required
from pamcore.web.context import current_core

#: A form field ``param.NAME`` carries the action parameter ``NAME``.
PARAM_FIELD = "param."


def _action_types(core: Pamcore) -> dict[str, ActionType]:
    return dict(sorted(core.hooks.actions().items()))


def _steps(activity: Activity, types: dict[str, ActionType]) -> dict[str, list[dict[str, Any]]]:
    """Each phase's actions in order, in words."""
    return {
        phase.value: [
            {
                "position": a.position,
                "type": a.action_type,
                "words": action_words(a, types.get(a.action_type)),
            }
            for a in activity.actions_for(phase)
        ]
        for phase in ActionPhase
    }


def _choices(db: Session) -> dict[str, Any]:
    """What the activity form picks from."""
    return {
        "kinds": [k.value for k in ActivityKind],
        "login_modes": [m.value for m in LoginMode],
        "credentials": [c.name for c in inventory.list_credentials(db)],
    }


@bp.get("/activities", endpoint="activities")
@role_required("admin")
def activities_view() -> ResponseReturnValue:
    with current_core().reader() as db:
        granted = policies.policies_by(db, "activities")
        rows = [
            {
                "a": a,
                "login": dict(activity_rules(a))["Login"],
                "pre": len(a.actions_for(ActionPhase.PRE)),
                "post": len(a.actions_for(ActionPhase.POST)),
                "policies": [p.name for p in granted.get(a.name, [])],
            }
            for a in activities.list_activities(db)
        ]
        return render("activities.html", rows=rows)


@bp.get("/activities/new")
@role_required("admin")
def activity_new() -> ResponseReturnValue:
    with current_core().reader() as db:
        return render("activity_edit.html", a=None, **_choices(db))


@bp.get("/activity/<name>")
@role_required("admin")
def activity_detail(name: str) -> ResponseReturnValue:
    core = current_core()
    with core.reader() as db:
        activity = activities.get_activity(db, name)
        granted = policies.policies_by(db, "activities").get(activity.name, [])
        return render(
            "activity_detail.html",
            a=activity,
            rules=activity_rules(activity),
            steps=_steps(activity, _action_types(core)),
            granted=[(p.name, p.enabled, policy_sentence(p)) for p in granted],
        )


@bp.get("/activity/<name>/edit")
@role_required("admin")
def activity_edit(name: str) -> ResponseReturnValue:
    """The form; ``?action_type=NAME`` opens the add-action form on that type's parameters."""
    core = current_core()
    types = _action_types(core)
    with core.reader() as db:
        activity = activities.get_activity(db, name)
        granted = policies.policies_by(db, "activities").get(activity.name, [])
        return render(
            "activity_edit.html",
            a=activity_record(activity),
            steps=_steps(activity, types),
            action_types=list(types.values()),
            adding=types.get(request.args.get("action_type", "")),
            phases=[p.value for p in ActionPhase],
            granted=[p.name for p in granted],
            all_policies=[p.name for p in policies.list_policies(db)],
            **_choices(db),
        )


# -- changes -----------------------------------------------------------------------------


def _activity_changes(form: Form, credential: str | None) -> activities.ActivityChanges:
    return activities.ActivityChanges(
        description=form.text("description"),
        kind=form.text("kind") or None,
        login_mode=form.text("login_mode") or None,
        login_template=form.text("login_template") or None,
        credential=credential,
    )


@change("activities", "create")
def create_activity(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    changes = _activity_changes(form, form.text("credential") or None)
    activity = activities.create_activity(core, db, actor, form.text("name"), changes)
    return f"created activity {activity.name}"


@change("activities", "update")
def update_activity(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    """The credential select sends ``""`` for none, which removes it."""
    name = form.text("activity")
    changes = _activity_changes(form, form.optional("credential"))
    activity = activities.update_activity(core, db, actor, name, changes)
    return f"updated activity {activity.name}"


change("activities", "policies")(policies_naming("activities", "activity"))


def _action_params(form: Form) -> dict[str, Any]:
    """The ``params`` JSON object with every non-empty ``param.NAME`` field added."""
    params = activities.parse_params(form.text("params"))
    for field in form.data:
        value = form.text(field).strip()
        if field.startswith(PARAM_FIELD) and value:
            params[field.removeprefix(PARAM_FIELD)] = value
    return params


@change("activities", "action_add")
def add_action(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    action = activities.add_action(
        core,
        db,
        actor,
        form.text("activity"),
        form.text("phase"),
        form.text("action_type"),
        _action_params(form),
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
