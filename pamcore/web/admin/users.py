"""Admin: users, like connection profiles: a list, a detail page per user saying their role,
state, groups and recent sessions with the sign-in actions, and an edit form; and the changes
those pages send. Groups have their module, :mod:`pamcore.web.admin.groups`."""

from __future__ import annotations

from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.model import Role, User
from pamcore.presenters import role_words, session_row, user_record
from pamcore.services import directory, sessions, signins, twofactor
from pamcore.web.admin import bp
from pamcore.web.admin.changes import change
from pamcore.web.admin.forms import Form
from pamcore.web.admin.rendering import render
from pamcore.web.auth import role_required
from pamcore.web.context import acting_user, current_core

#: How many of a user's sessions their page lists (the sessions page has them all).
RECENT_SESSIONS = 10


@bp.get("/users")
@role_required("admin")
def users() -> ResponseReturnValue:
    with current_core().reader() as db:
        return render("users.html", users=[user_record(u) for u in directory.list_users(db)])


@bp.get("/users/new")
@role_required("admin")
def user_new() -> ResponseReturnValue:
    return render("user_edit.html", u=None, roles=[r.value for r in Role])


@bp.get("/user/<name>")
@role_required("admin")
def user_detail(name: str) -> ResponseReturnValue:
    core = current_core()
    with core.reader() as db:
        user = directory.get_user(db, name)
        recent = sessions.list_sessions(
            db, acting_user(db), "all", limit=RECENT_SESSIONS, requester=user
        )
        return render(
            "user_detail.html",
            u=user_record(user),
            role=role_words(user.role),
            two_factor=twofactor.totp_enabled(user),
            ssh_keys=[f"{k.name or 'key'} ({k.fingerprint})" for k in user.ssh_keys],
            sessions=[session_row(s, core.now()) for s in recent],
            groups=[g.name for g in directory.list_groups(db)],
        )


@bp.get("/user/<name>/edit")
@role_required("admin")
def user_edit(name: str) -> ResponseReturnValue:
    with current_core().reader() as db:
        return render(
            "user_edit.html",
            u=user_record(directory.get_user(db, name)),
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


@change("users", "update")
def update_user(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    user = directory.update_user(
        core,
        db,
        actor,
        form.text("username"),
        display_name=form.text("display_name"),
        email=form.text("email"),
    )
    return f"updated user {user.username}"


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


@change("users", "totp_off")
def remove_second_factor(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    """An administrator removes a user's second factor (a lost phone): the user signs in
    with the password alone until they enrol again."""
    user = directory.get_user(db, form.text("username"))
    twofactor.disable_totp(core, db, actor, user)
    return f"second factor of {user.username} removed"


@change("users", "delete")
def delete_user(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    directory.delete_user(core, db, actor, form.text("username"))
    return f"deleted user {form.text('username')}"
