"""Approvals: the approver's queue, and approve or deny with a comment the requester sees.
Who may decide is the approvals service's answer alone; this page only shows it."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required

from pamcore.lifecycle import Status
from pamcore.services import approvals as svc
from pamcore.web.context import acting_user, current_core

bp = Blueprint("approvals", __name__, url_prefix="/approvals")


@bp.route("/")
@login_required
def queue() -> ResponseReturnValue:
    core = current_core()
    with core.reader() as db:
        waiting = svc.approval_queue(core, db, acting_user(db))
        return render_template(
            "approvals/queue.html", waiting=waiting, current_tier=svc.current_tier
        )


@bp.route("/<int:session_id>/<any(approve, deny):decision>", methods=["POST"])
@login_required
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
