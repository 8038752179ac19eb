"""Admin: activities and their pre- and post-session actions: the page and the changes
it sends."""

from __future__ import annotations

from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.model import ActionPhase, ActivityKind, LoginMode, User
from pamcore.services import activities, inventory
from pamcore.web.admin import bp
from pamcore.web.admin.changes import change
from pamcore.web.admin.forms import Form
from pamcore.web.admin.rendering import render
from pamcore.web.auth import role_required
from pamcore.web.context import current_core


@bp.get("/activities", endpoint="activities")
@role_required("admin")
def activities_view() -> ResponseReturnValue:
    core = current_core()
    with core.reader() as db:
        return render(
            "activities.html",
            activities=[activities.activity_record(a) for a in activities.list_activities(db)],
            credentials=[c.name for c in inventory.list_credentials(db)],
            action_types=sorted(core.hooks.actions().values(), key=lambda a: a.name),
            kinds=[k.value for k in ActivityKind],
            login_modes=[m.value for m in LoginMode],
            phases=[p.value for p in ActionPhase],
        )


# -- changes -----------------------------------------------------------------------------


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
