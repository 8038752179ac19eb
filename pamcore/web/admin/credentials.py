"""Admin: vaulted credentials, the page and the changes it sends; secrets go from the form
to the vault and are never echoed."""

from __future__ import annotations

from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.model import User
from pamcore.services import inventory
from pamcore.web.admin import bp
from pamcore.web.admin.changes import change
from pamcore.web.admin.forms import Form
from pamcore.web.admin.rendering import render
from pamcore.web.auth import role_required
from pamcore.web.context import current_core


@bp.get("/credentials")
@role_required("admin")
def credentials() -> ResponseReturnValue:
    with current_core().reader() as db:
        return render(
            "credentials.html",
            credentials=[inventory.credential_record(c) for c in inventory.list_credentials(db)],
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
