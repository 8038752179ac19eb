"""Admin: users and groups, their page and the changes it sends."""

from __future__ import annotations

from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.model import Role, User
from pamcore.services import directory, signins
from pamcore.web.admin import bp
from pamcore.web.admin.changes import change
from pamcore.web.admin.forms import Form
from pamcore.web.admin.rendering import render
from pamcore.web.auth import role_required
from pamcore.web.context import current_core


@bp.get("/users")
@role_required("admin")
def users() -> ResponseReturnValue:
    with current_core().reader() as db:
        return render(
            "users.html",
            users=[directory.user_record(u) for u in directory.list_users(db)],
            groups=[directory.group_record(g) for g in directory.list_groups(db)],
            roles=[r.value for r in Role],
        )


# -- changes -----------------------------------------------------------------------------


@change("users", "create")
def create_user(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    user = directory.create_user(
        core,
        db,
        actor,
        form.text("username"),
        role=form.text("role") or "user",
        display_name=form.text("display_name"),
        email=form.text("email"),
        password=form.text("password") or None,
    )
    return f"created user {user.username}"


@change("users", "role")
def set_role(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    user = directory.set_role(core, db, actor, form.text("username"), form.text("role"))
    return f"{user.username} is now {user.role.value}"


@change("users", "password")
def set_password(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    user = directory.set_password(core, db, actor, form.text("username"), form.text("password"))
    return f"password of {user.username} set"


@change("users", "enable")
def enable_user(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    active = form.text("active") == "yes"
    user = directory.set_active(core, db, actor, form.text("username"), active)
    return f"{user.username} {'enabled' if active else 'disabled'}"


@change("users", "sign_out")
def sign_out_everywhere(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    user = signins.sign_out_everywhere(core, db, actor, form.text("username"))
    return f"{user.username} is signed out of every browser"


@change("users", "unlock")
def unlock_user(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    return f"{directory.unlock_user(core, db, actor, form.text('username')).username} unlocked"


@change("users", "delete")
def delete_user(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    directory.delete_user(core, db, actor, form.text("username"))
    return f"deleted user {form.text('username')}"


@change("users", "group_create")
def create_group(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    group = directory.create_group(
        core, db, actor, form.text("name"), form.text("description"), form.names("members")
    )
    return f"created group {group.name}"


@change("users", "member_add")
def add_member(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    group = directory.add_member(core, db, actor, form.text("group"), form.text("username"))
    return f"added {form.text('username')} to {group.name}"


@change("users", "member_remove")
def remove_member(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    group = directory.remove_member(core, db, actor, form.text("group"), form.text("username"))
    return f"removed {form.text('username')} from {group.name}"


@change("users", "group_delete")
def delete_group(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    directory.delete_group(core, db, actor, form.text("group"))
    return f"deleted group {form.text('group')}"
