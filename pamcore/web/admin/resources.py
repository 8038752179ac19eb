"""Admin: resources (targets), their page and the changes it sends."""

from __future__ import annotations

from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.model import Platform, User
from pamcore.services import inventory
from pamcore.web.admin import bp
from pamcore.web.admin.changes import change
from pamcore.web.admin.forms import Form
from pamcore.web.admin.rendering import render
from pamcore.web.auth import role_required
from pamcore.web.context import current_core


@bp.get("/resources")
@role_required("admin")
def resources() -> ResponseReturnValue:
    core = current_core()
    with core.reader() as db:
        return render(
            "resources.html",
            resources=[inventory.resource_record(r) for r in inventory.list_resources(db)],
            settings=inventory.available_settings(core),
            platforms=[p.value for p in Platform],
        )


# -- changes -----------------------------------------------------------------------------


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
