"""Admin: resources (targets), like the profile pages: a short list, a detail page saying in
words where a resource is, how its host key is checked, its plugin settings, its
credentials and which policies reach it, and an edit form; and the changes they send."""

from __future__ import annotations

from typing import Any

from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.model import Platform, Resource, User
from pamcore.presenters import credential_record, policy_sentence, resource_record, resource_rules
from pamcore.services import inventory, policies
from pamcore.web.admin import bp
from pamcore.web.admin.changes import change, policies_naming
from pamcore.web.admin.forms import Form
from pamcore.web.admin.rendering import render
from pamcore.web.auth import role_required
from pamcore.web.context import current_core

#: A form field ``port.NAME`` carries the port of the ticked protocol ``NAME``.
PORT_FIELD = "port."


def _protocol_rows(core: Pamcore, resource: Resource | None) -> list[dict[str, Any]]:
    """One row per protocol the form offers: the installed plugins', the well-known ones
    and any the resource already speaks, ticked with its port when it does."""
    ports = {p.name: p.port for p in resource.protocols} if resource else {}
    names = set(core.hooks.protocols()) | set(inventory.WELL_KNOWN_PORTS) | set(ports)
    if resource is None:
        ports = {"ssh": inventory.WELL_KNOWN_PORTS["ssh"]}
    return [
        {
            "name": name,
            "on": name in ports,
            "port": ports.get(name, inventory.WELL_KNOWN_PORTS.get(name)),
        }
        for name in sorted(names)
    ]


def _settings(core: Pamcore, resource: Resource) -> list[dict[str, Any]]:
    """Every per-resource setting the installed plugins understand, with this one's value."""
    values = resource_record(resource)["settings"]
    return [
        {"name": f"{s.plugin}.{s.key}", "spec": s, "value": values.get(f"{s.plugin}.{s.key}")}
        for s in inventory.available_settings(core)
    ]


@bp.get("/resources", endpoint="resources")
@role_required("admin")
def resources_view() -> ResponseReturnValue:
    with current_core().reader() as db:
        reached = policies.policies_by(db, "resources")
        rows = [
            {
                "r": r,
                "protocols": ", ".join(f"{p.name}:{p.port}" for p in r.protocols),
                "policies": [p.name for p in reached.get(r.name, [])],
            }
            for r in inventory.list_resources(db)
        ]
        return render("resources.html", rows=rows)


@bp.get("/resources/new")
@role_required("admin")
def resource_new() -> ResponseReturnValue:
    core = current_core()
    return render(
        "resource_edit.html",
        r=None,
        protocols=_protocol_rows(core, None),
        platforms=[p.value for p in Platform],
    )


@bp.get("/resource/<name>")
@role_required("admin")
def resource_detail(name: str) -> ResponseReturnValue:
    core = current_core()
    with core.reader() as db:
        resource = inventory.get_resource(db, name)
        reached = policies.policies_by(db, "resources").get(resource.name, [])
        return render(
            "resource_detail.html",
            r=resource,
            rules=resource_rules(resource),
            settings=_settings(core, resource),
            credentials=[
                credential_record(c)
                for c in inventory.list_credentials(db)
                if c.resource_id == resource.id
            ],
            reached=[(p.name, p.enabled, policy_sentence(p)) for p in reached],
        )


@bp.get("/resource/<name>/edit")
@role_required("admin")
def resource_edit(name: str) -> ResponseReturnValue:
    core = current_core()
    with core.reader() as db:
        resource = inventory.get_resource(db, name)
        reached = policies.policies_by(db, "resources").get(resource.name, [])
        return render(
            "resource_edit.html",
            r=resource_record(resource),
            protocols=_protocol_rows(core, resource),
            platforms=[p.value for p in Platform],
            settings=_settings(core, resource),
            all_policies=[p.name for p in policies.list_policies(db)],
            reached=[p.name for p in reached],
        )


# -- changes -----------------------------------------------------------------------------


def _protocols(form: Form) -> list[str]:
    """``NAME:PORT`` for each ticked protocol with its ``port.NAME`` field (a bare name
    takes its well-known port), and any typed as ``NAME:PORT``."""
    specs = []
    for name in form.names("protocols"):
        port = form.text(f"{PORT_FIELD}{name}").strip()
        specs.append(f"{name}:{port}" if port and ":" not in name else name)
    return specs


@change("resources", "create")
def create_resource(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    resource = inventory.create_resource(
        core,
        db,
        actor,
        form.text("name"),
        form.text("address"),
        platform=form.text("platform") or "linux",
        protocols=_protocols(form),
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
        protocols=tuple(_protocols(form)),
        host_key=form.optional("host_key"),
        trust_on_first_use=form.flag("trust_on_first_use"),
    )
    resource = inventory.update_resource(core, db, actor, form.text("resource"), changes)
    return f"updated resource {resource.name}"


change("resources", "policies")(policies_naming("resources", "resource"))


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
