"""Admin pages (role admin). Each area (users, groups, resources, credentials, activities,
connection profiles, access policies) follows the user-facing pages: a short list, a detail
page per item saying it in words, and an edit form whose searchable pickers offer the names
to choose. Every form posts to ``/admin/<area>/<change>``, which parses the form and makes
one service call (the services check and audit); a refusal comes back as a flash message.
Changes need a recent sign-in, like a password reveal.

A form names where to go next (``next``) and where to come back to on a refusal (``here``);
both must be admin pages."""

from __future__ import annotations

from flask import Blueprint, Flask, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import NotFound as HttpNotFound

from pamcore.errors import PamError
from pamcore.web.admin.changes import CHANGES
from pamcore.web.admin.forms import Form
from pamcore.web.auth import fresh_login_required, role_required
from pamcore.web.context import acting_user, current_core


def _admin_page(path: str | None) -> str | None:
    """``path`` when it is an admin page of this app (never another site), else None."""
    prefix = url_for("admin.index")
    if path and path.startswith(prefix) and "//" not in path and "\\" not in path:
        return path
    return None


bp = Blueprint(
    "admin",
    __name__,
    url_prefix="/admin",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


def register(app: Flask) -> None:
    from pamcore.web.admin import (  # noqa: F401 (routes)
        activities,
        credentials,
        groups,
        pages,
        resources,
        users,
    )

    app.register_blueprint(bp)


@bp.post("/<area>/<change>")
@role_required("admin")
@fresh_login_required
def apply_change(area: str, change: str) -> ResponseReturnValue:
    """Run one change of the table in :mod:`pamcore.web.admin.changes` in one unit of work."""
    run = CHANGES.get((area, change))
    if run is None:
        raise HttpNotFound()
    core = current_core()
    try:
        with core.unit() as db:
            message = run(core, db, acting_user(db), Form(request.form))
    except PamError as exc:
        flash(str(exc), "error")
        back = _admin_page(request.form.get("here")) or _admin_page(request.form.get("next"))
    else:
        flash(message, "success")
        back = _admin_page(request.form.get("next"))
    return redirect(back or url_for(f"admin.{area}"), code=303)
