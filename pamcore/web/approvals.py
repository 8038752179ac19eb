"""Approvals: the approver's queue, and approve or deny with a comment the requester sees."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from pamcore.lifecycle import Status
from pamcore.services import approvals as svc
from pamcore.web.auth import role_required
from pamcore.web.context import acting_user, current_core

bp = Blueprint("approvals", __name__, url_prefix="/approvals")
APPROVER_ROLES = ("approver", "admin")


@bp.route("/")
@role_required(*APPROVER_ROLES)
def queue() -> ResponseReturnValue:
    core = current_core()
    with core.reader() as db:
        waiting = svc.approval_queue(core, db, acting_user(db))
        return render_template(
            "approvals/queue.html", waiting=waiting, current_tier=svc.current_tier
        )


@bp.route("/<int:session_id>/<any(approve, deny):decision>", methods=["POST"])
@role_required(*APPROVER_ROLES)
def decide(session_id: int, decision: str) -> ResponseReturnValue:
    core = current_core()
    decide_session = svc.approve_session if decision == "approve" else svc.deny_session
    with core.unit() as db:
        session = decide_session(
            core, db, acting_user(db), session_id, request.form.get("comment", "")
        )
        label = Status(session.status).label
    verb = "approved" if decision == "approve" else "denied"
    flash(f"Session #{session_id} {verb}: now {label}.", "success")
    return redirect(url_for("approvals.queue"), code=303)
