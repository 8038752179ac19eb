"""Create Session wizard: Request Type -> Resource Selection -> Notes -> Scheduling ->
Review -> Finish. What was typed is kept server-side in the Flask session (no secrets), so
Back and Next never lose it; each step is checked with the service's own messages."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required

from pamcore.errors import ValidationError
from pamcore.lifecycle import Status
from pamcore.services import request_steps
from pamcore.services.sessions import SessionRequest, create_session
from pamcore.web.context import acting_user, current_core

bp = Blueprint("wizard", __name__, url_prefix="/sessions/new")

#: (step, title) in order; the last one has no input of its own.
STEPS = (
    ("activity", "Request Type"),
    ("resources", "Resource Selection"),
    ("notes", "Notes"),
    ("schedule", "Scheduling"),
    ("review", "Review"),
)
NAMES = [name for name, _ in STEPS]
#: The step where each field the services may complain about is typed.
FIELD_STEP = {
    "activity": "activity",
    "resources": "resources",
    "notes": "notes",
    "ticket": "notes",
    "start": "schedule",
}
KEY = "wizard"


def _state() -> dict[str, Any]:
    return dict(session.get(KEY) or {})


def _save(form: Any, step: str) -> dict[str, Any]:
    """Keep what this step's form holds (on Back as well as Next)."""
    state = _state()
    if step == "activity":
        if state.get("activity") != form.get("activity", ""):
            state["resources"] = []  # other activity, other resources
        state["activity"] = form.get("activity", "")
    elif step == "resources":
        state["resources"] = form.getlist("resources")
    elif step == "notes":
        state["notes"] = form.get("notes", "")[:5000]
        state["ticket"] = form.get("ticket", "")[:200]
    elif step == "schedule":
        for field in ("when", "date", "time", "tz", "offset"):
            state[field] = form.get(field, "")[:64]
    session[KEY] = state
    return state


def _start(state: dict[str, Any]) -> dt.datetime | None:
    """The start the user typed, in their browser's zone (name, else UTC offset)."""
    if state.get("when", "now") != "later":
        return None
    try:
        naive = dt.datetime.fromisoformat(f"{state.get('date', '')}T{state.get('time', '')}")
    except ValueError:
        raise ValidationError("start", "give a date and a time, or choose Now") from None
    try:
        zone: dt.tzinfo = ZoneInfo(state.get("tz") or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        try:
            zone = dt.timezone(dt.timedelta(minutes=int(state.get("offset") or 0)))
        except ValueError:
            zone = dt.UTC
    return naive.replace(tzinfo=zone)


def _request(state: dict[str, Any]) -> SessionRequest:
    return SessionRequest(
        activity=state.get("activity", ""),
        resources=tuple(state.get("resources") or ()),
        notes=state.get("notes", ""),
        ticket=state.get("ticket", ""),
        start=_start(state),
    )


def _render(step: str, state: dict[str, Any], errors: dict[str, str] | None = None, status=200):  # type: ignore[no-untyped-def]
    core = current_core()
    with core.reader() as db:
        user = acting_user(db)
        context: dict[str, Any] = {}
        if step == "activity":
            context["activities"] = request_steps.requestable_activities(db, user)
        elif step == "resources":
            context["resources"] = request_steps.requestable_resources(
                db, user, state.get("activity", "")
            )
        elif step == "review":
            start = _start(state)
            context["start"] = start.astimezone(dt.UTC) if start else None
        return render_template(
            "wizard/step.html",
            steps=STEPS,
            step=step,
            index=NAMES.index(step),
            state=state,
            errors=errors or {},
            **context,
        ), status


@bp.route("/")
@login_required
def start() -> ResponseReturnValue:
    """A new request: forget an unfinished one."""
    session.pop(KEY, None)
    return redirect(url_for("wizard.step", step="activity"))


@bp.route("/<any(activity, resources, notes, schedule, review):step>", methods=["GET", "POST"])
@login_required
def step(step: str) -> ResponseReturnValue:
    index = NAMES.index(step)
    if request.method == "GET":
        return _render(step, _state())
    state = _save(request.form, step)
    if request.form.get("go") == "back":
        return redirect(url_for("wizard.step", step=NAMES[max(index - 1, 0)]), code=303)
    core = current_core()
    try:
        if step == "review":
            return _finish(state)
        with core.reader() as db:
            request_steps.check_step(core, db, acting_user(db), _request(state), step)
    except ValidationError as exc:
        return _render(FIELD_STEP.get(exc.field, step), state, {exc.field: exc.reason}, 422)
    return redirect(url_for("wizard.step", step=NAMES[index + 1]), code=303)


def _finish(state: dict[str, Any]) -> ResponseReturnValue:
    core = current_core()
    with core.unit() as db:
        created = create_session(core, db, acting_user(db), _request(state))
        number, label = created.id, Status(created.status).label
    session.pop(KEY, None)
    flash(f"Session #{number} created: {label}.", "success")
    return redirect(url_for("dashboard.active"), code=303)
