"""Dashboard > Active, Scheduled and History: the session tables, refreshed in place by
htmx polling a table fragment, so a status change shows up without a reload."""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required

from pamcore.services.connections import legacy_algorithms
from pamcore.services.session_controls import list_with_controls
from pamcore.web.context import acting_user, current_core

bp = Blueprint("dashboard", __name__)

#: view name -> (page title, what an empty table says to do)
PAGES = {
    "active": (
        "Active Sessions",
        "You have no open sessions. Click Create Session to ask for access.",
    ),
    "scheduled": (
        "Scheduled Sessions",
        "Nothing is scheduled or waiting for approval. Sessions you request for later appear here.",
    ),
    "history": (
        "History",
        "No finished sessions yet. Ended, expired, canceled and denied sessions appear here.",
    ),
}


def _render(template: str, view: str) -> str:
    """The page or the table fragment alone; both render the same rows."""
    core = current_core()
    with core.reader() as db:
        rows = list_with_controls(core, db, acting_user(db), view)
        return render_template(
            template,
            rows=rows,
            legacy=legacy_algorithms(db, [s.id for s, _ in rows]),
            view=view,
            now=core.now(),
            title=PAGES[view][0],
            empty=PAGES[view][1],
            poll=current_app.config["PAMCORE_POLL_SECONDS"],
        )


def _page(view: str) -> ResponseReturnValue:
    return _render("dashboard/list.html", view)


@bp.route("/")
def index() -> ResponseReturnValue:
    return redirect(url_for("dashboard.active"))


@bp.route("/active")
@login_required
def active() -> ResponseReturnValue:
    return _page("active")


@bp.route("/scheduled")
@login_required
def scheduled() -> ResponseReturnValue:
    return _page("scheduled")


@bp.route("/history")
@login_required
def history() -> ResponseReturnValue:
    return _page("history")


@bp.route("/table/<any(active, scheduled, history):view>")
@login_required
def table(view: str) -> ResponseReturnValue:
    """The table alone, for htmx to swap in every few seconds."""
    return _render("dashboard/_table.html", view)
