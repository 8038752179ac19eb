"""The Audit page (admins and auditors: filters, and a check of the hash chain) and the
Recordings page (recordings the viewer may replay; SSH ones play in the browser with the
vendored asciinema-player, so no asset comes from the internet)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from flask import Blueprint, Flask, Response, make_response, render_template, request, send_file
from flask.typing import ResponseReturnValue
from flask_login import login_required

from pamcore.errors import NotFound, ValidationError
from pamcore.presenters import audit_row
from pamcore.services.audit_log import AuditFilter, check_chain, list_events
from pamcore.services.recordings import ASCIICAST_V2, get_recording, list_recordings
from pamcore.web.auth import role_required
from pamcore.web.context import acting_user, current_core

bp = Blueprint(
    "auditing",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static/auditing",
)

#: Formats the browser player understands.
PLAYABLE = frozenset({ASCIICAST_V2})
#: Media type and file extension per recording format; other formats (a protocol plugin's
#: own, such as the RDP PDU log) download as opaque files, not as something they are not.
FILE_TYPES = {ASCIICAST_V2: ("application/x-asciicast", "cast")}
OTHER_FILE_TYPE = ("application/octet-stream", "log")


def register(app: Flask) -> None:
    app.register_blueprint(bp)


def _day(name: str, end: bool = False) -> dt.datetime | None:
    """A ``YYYY-MM-DD`` filter as a UTC instant (the day's start; the next day's for ``end``)."""
    text = request.args.get(name, "").strip()
    if not text:
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise ValidationError(name, f"'{text}' is not a date (YYYY-MM-DD)") from None
    moment = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return moment + dt.timedelta(days=1) if end else moment


def _filters() -> AuditFilter:
    session = request.args.get("session", "").strip().lstrip("#")
    if session and not session.isdigit():
        raise ValidationError("session", f"'{session}' is not a session number")
    return AuditFilter(
        actor=request.args.get("actor", ""),
        action=request.args.get("action", ""),
        session_id=int(session) if session else None,
        since=_day("since"),
        until=_day("until", end=True),
    )


@bp.get("/audit")
@role_required("admin", "auditor")
def audit() -> ResponseReturnValue:
    core = current_core()
    wanted = _filters()
    with core.reader() as db:
        events = [audit_row(e) for e in list_events(db, acting_user(db), wanted)]
    return render_template("auditing/audit.html", events=events, args=request.args)


@bp.post("/audit/verify")
@role_required("admin", "auditor")
def verify() -> ResponseReturnValue:
    """A POST (with CSRF) because it walks the whole log: no link or crawler starts it."""
    core = current_core()
    with core.reader() as db:
        checked, problems = check_chain(core, db, acting_user(db))
    return render_template(
        "auditing/verify.html", checked=checked, problems=[str(p) for p in problems]
    )


@bp.get("/recordings")
@login_required
def recordings() -> ResponseReturnValue:
    with current_core().reader() as db:
        found = list_recordings(db, acting_user(db))
        return render_template("auditing/recordings.html", recordings=found, playable=PLAYABLE)


@bp.get("/recordings/<int:recording_id>")
@login_required
def play(recording_id: int) -> ResponseReturnValue:
    """The player's terminal emulator is WebAssembly: this page alone may compile it."""
    from pamcore.web.app import CSP  # the app module imports this one

    with current_core().reader() as db:
        recording = get_recording(db, acting_user(db), recording_id)
        page = render_template(
            "auditing/play.html", recording=recording, playable=recording.format in PLAYABLE
        )
    response = make_response(page)
    response.headers["Content-Security-Policy"] = CSP.replace(
        "script-src 'self'", "script-src 'self' 'wasm-unsafe-eval'"
    )
    return response


@bp.get("/recordings/<int:recording_id>/cast")
@login_required
def cast(recording_id: int) -> Response:
    """The recording file itself, for the player (or to download)."""
    with current_core().reader() as db:
        recording = get_recording(db, acting_user(db), recording_id)
        path = Path(recording.path)
        mimetype, extension = FILE_TYPES.get(recording.format, OTHER_FILE_TYPE)
    if not path.is_file():
        raise NotFound(f"the file of recording #{recording_id} is missing on this server")
    return send_file(
        path,
        mimetype=mimetype,
        as_attachment=request.args.get("download") == "1",
        download_name=f"pamcore-recording-{recording_id}.{extension}",
    )
