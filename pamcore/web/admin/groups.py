"""Admin: groups, like connection profiles: a list, a detail page per group saying its members
and what it grants or approves, and an edit form whose member picker replaces the member list.
Their changes post to ``/admin/users/group_...`` (groups began on the users page)."""

from __future__ import annotations

from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.model import User
from pamcore.presenters import group_record
from pamcore.services import directory, policies, profiles
from pamcore.web.admin import bp
from pamcore.web.admin.changes import change
from pamcore.web.admin.forms import Form
from pamcore.web.admin.rendering import pickers, render
from pamcore.web.auth import role_required
from pamcore.web.context import current_core


def _uses(db: Session, group: str) -> tuple[list[str], list[str]]:
    """The access policies that grant ``group`` and the connection profiles it approves in:
    a group in use cannot be deleted, so its page says where it is used."""
    granted = [p.name for p in policies.list_policies(db) if group in {g.name for g in p.groups}]
    approves = [
        p.name
        for p in profiles.list_profiles(db)
        if any(group in {g.name for g in t.groups} for t in p.tiers)
    ]
    return granted, approves


@bp.get("/groups")
@role_required("admin")
def groups() -> ResponseReturnValue:
    with current_core().reader() as db:
        return render("groups.html", groups=[group_record(g) for g in directory.list_groups(db)])


@bp.get("/groups/new")
@role_required("admin")
def group_new() -> ResponseReturnValue:
    with current_core().reader() as db:
        return render("group_edit.html", g=None, users=pickers(db)["users"])


@bp.get("/group/<name>")
@role_required("admin")
def group_detail(name: str) -> ResponseReturnValue:
    with current_core().reader() as db:
        group = directory.get_group(db, name)
        granted, approves = _uses(db, group.name)
        return render(
            "group_detail.html",
            g=group_record(group),
            granted=granted,
            approves=approves,
        )


@bp.get("/group/<name>/edit")
@role_required("admin")
def group_edit(name: str) -> ResponseReturnValue:
    with current_core().reader() as db:
        return render(
            "group_edit.html",
            g=group_record(directory.get_group(db, name)),
            users=pickers(db)["users"],
        )


# -- changes -----------------------------------------------------------------------------


@change("users", "group_create")
def create_group(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    group = directory.create_group(
        core, db, actor, form.text("name"), form.text("description"), form.names("members")
    )
    return f"created group {group.name}"


@change("users", "group_update")
def update_group(core: Pamcore, db: Session, actor: User, form: Form) -> str:
    """The description, and the members the picker holds (they replace the group's)."""
    group = directory.update_group(
        core,
        db,
        actor,
        form.text("group"),
        description=form.text("description"),
        members=form.names("members"),
    )
    return f"updated group {group.name}"


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
