"""Admin: vaulted credentials, like connection profiles: a list, a detail page per credential
saying what is stored (never the secret) and who logs in with it, and an edit form. Secrets go
from a password field to the vault and are never echoed."""

from __future__ import annotations

from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.model import User
from pamcore.presenters import credential_record
from pamcore.services import activities, inventory
from pamcore.web.admin import bp
from pamcore.web.admin.changes import change
from pamcore.web.admin.forms import Form
from pamcore.web.admin.rendering import render
from pamcore.web.auth import role_required
from pamcore.web.context import current_core


def _activities_by_credential(db: Session) -> dict[str, list[str]]:
    """The activities that log in with (or check out) each credential: a credential they
    use cannot be deleted, so the pages say so."""
    used: dict[str, list[str]] = {}
    for activity in activities.list_activities(db):
        if activity.credential is not None:
            used.setdefault(activity.credential.name, []).append(activity.name)
    return used


@bp.get("/credentials")
@role_required("admin")
def credentials() -> ResponseReturnValue:
    with current_core().reader() as db:
        return render(
            "credentials.html",
            credentials=[credential_record(c) for c in inventory.list_credentials(db)],
            used_by=_activities_by_credential(db),
        )


@bp.get("/credentials/new")
@role_required("admin")
def credential_new() -> ResponseReturnValue:
    with current_core().reader() as db:
        return render(
            "credential_edit.html",
            c=None,
            resources=[r.name for r in inventory.list_resources(db)],
        )


@bp.get("/credential/<name>")
@role_required("admin")
def credential_detail(name: str) -> ResponseReturnValue:
    with current_core().reader() as db:
        credential = inventory.get_credential(db, name)
        return render(
            "credential_detail.html",
            c=credential_record(credential),
            used_by=_activities_by_credential(db).get(credential.name, []),
        )


@bp.get("/credential/<name>/edit")
@role_required("admin")
def credential_edit(name: str) -> ResponseReturnValue:
    with current_core().reader() as db:
        return render(
            "credential_edit.html",
            c=credential_record(inventory.get_credential(db, name)),
            resources=[r.name for r in inventory.list_resources(db)],
        )


# -- changes -----------------------------------------------------------------------------


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


@change("credentials", "update")
def update_credential(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    """The non-secret fields; the name stays (activities and the history name it)."""
    changes = inventory.CredentialChanges(
        username=form.text("username"),
        resource=form.text("resource"),
        managed=form.flag("managed"),
        description=form.text("description"),
    )
    credential = inventory.update_credential(core, db, actor, form.text("credential"), changes)
    return f"updated credential {credential.name}"


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
