"""One session: its detail page and its controls (connect, reveal the password, extend,
cancel, end). Each control is a POST with a CSRF token that calls one service."""

from __future__ import annotations

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required

from pamcore.lifecycle import Status
from pamcore.presenters import approval_sentence, session_detail
from pamcore.services import sessions as svc
from pamcore.services.access import reveal_password
from pamcore.services.common import worker_name
from pamcore.services.connections import legacy_algorithms
from pamcore.services.ending import complete_ending
from pamcore.services.session_controls import connection_launches, launch_file, session_controls
from pamcore.web.auth import fresh_login_required
from pamcore.web.context import acting_user, current_core

bp = Blueprint("sessions", __name__, url_prefix="/sessions")


def _to_active() -> ResponseReturnValue:
    return redirect(url_for("dashboard.active"), code=303)


@bp.route("/<int:session_id>")
@login_required
def detail(session_id: int) -> ResponseReturnValue:
    """Everything about a session, with the approvers' decisions and comments."""
    core = current_core()
    with core.reader() as db:
        viewer = acting_user(db)
        session = svc.show_session(db, viewer, session_id)
        return render_template(
            "sessions/detail.html",
            s=session,
            d=session_detail(session, core.now()),
            approval_path=approval_sentence(list(session.profile.tiers)),
            a=session_controls(core, session, viewer, core.now()),
            legacy=legacy_algorithms(db, [session.id]).get(session.id),
        )


@bp.route("/<int:session_id>/connect")
@login_required
def connect(session_id: int) -> ResponseReturnValue:
    core = current_core()
    with core.reader() as db:
        launches = connection_launches(core, db, acting_user(db), session_id)
    return render_template("sessions/connect.html", session_id=session_id, launches=launches)


@bp.route("/<int:session_id>/connect/<resource>/<protocol>")
@login_required
def connect_file(session_id: int, resource: str, protocol: str) -> ResponseReturnValue:
    """The protocol plugin's file (e.g. ``.rdp``) as a download."""
    core = current_core()
    with core.reader() as db:
        name, media_type, content = launch_file(
            core, db, acting_user(db), session_id, resource, protocol
        )
    return Response(
        content,
        mimetype=media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.route("/<int:session_id>/password", methods=["POST"])
@fresh_login_required
def password(session_id: int) -> ResponseReturnValue:
    """Reveal (audited) for the profile's window: in this response body only, never in a
    URL or a log; the page counts down and removes it."""
    core = current_core()
    purpose = request.form.get("purpose", "view")
    with core.unit() as db:
        revealed = reveal_password(core, db, acting_user(db), session_id, purpose)
    return render_template("sessions/password.html", reveal=revealed)


@bp.route("/<int:session_id>/extend", methods=["POST"])
@login_required
def extend(session_id: int) -> ResponseReturnValue:
    core = current_core()
    with core.unit() as db:
        ext = svc.extend_session(core, db, acting_user(db), session_id)
    flash(
        f"Session #{session_id} extended until {ext.new_end:%Y-%m-%d %H:%M} UTC; "
        f"{ext.extensions_left} extension(s) left.",
        "success",
    )
    return _to_active()


@bp.route("/<int:session_id>/cancel", methods=["POST"])
@login_required
def cancel(session_id: int) -> ResponseReturnValue:
    core = current_core()
    with core.unit() as db:
        actor = acting_user(db)
        who = actor.username
        status = Status(svc.cancel_session(core, db, actor, session_id).status)
    if status == Status.ENDING:  # it was running: remove what was created for it, now
        status = complete_ending(core, session_id, worker_name(), who) or status
    flash(f"Session #{session_id} canceled ({status.label}).", "success")
    return _to_active()


@bp.route("/<int:session_id>/end", methods=["POST"])
@login_required
def end(session_id: int) -> ResponseReturnValue:
    core = current_core()
    with core.unit() as db:
        actor = acting_user(db)
        who = actor.username
        svc.end_session(core, db, actor, session_id)
    status = complete_ending(core, session_id, worker_name(), who)
    flash(f"Session #{session_id} {(status or Status.ENDING).label.lower()}.", "success")
    return _to_active()
