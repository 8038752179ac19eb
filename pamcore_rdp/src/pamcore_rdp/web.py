"""The dashboard's RDP pages: the ``.rdp`` download, a file with a fresh one-time routing
token made per download because the token is signed with the instance secret and expires
(:mod:`pamcore_rdp.rdpfile`; the Connection page links here through
``LaunchInfo.file_url``), and the proxy certificate's fingerprint to compare with the
client's prompt (``LaunchInfo.links``)."""

from __future__ import annotations

from flask import Blueprint, Response, render_template
from flask.typing import ResponseReturnValue
from flask_login import login_required

from pamcore.proxy import login_name
from pamcore.webkit import acting_user, current_core, own_connectable_session, token_secret
from pamcore_rdp.certs import certificate_info
from pamcore_rdp.plugin import file_name
from pamcore_rdp.rdpfile import MEDIA_TYPE, clipboard_allowed, issue_file_token, rdp_file

bp = Blueprint("rdp", __name__, url_prefix="/rdp", template_folder="templates")


@bp.route("/file/<int:session_id>/<resource>")
@login_required
def download(session_id: int, resource: str) -> ResponseReturnValue:
    """The requester's ``.rdp`` file for an Available session; anyone else, or a session
    that cannot be used, gets the dashboard's error page (a PamError)."""
    core = current_core()
    with core.reader() as db:
        user = acting_user(db)
        token = issue_file_token(core, db, user, session_id, resource, token_secret())
        session = own_connectable_session(core, db, user, session_id)
        name = next(r.name for r in session.resources if r.name.lower() == resource.lower())
        login = login_name(user.username, session.activity.name, name)
        clipboard = clipboard_allowed(session)
    port = core.hooks.protocols()["rdp"].port(core.config)
    content = rdp_file(core.config.public_host, login, port, token, clipboard=clipboard)
    return Response(
        content,
        mimetype=MEDIA_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{file_name(name)}"',
            # the token is single-use: no cache may keep or replay the file
            "Cache-Control": "no-store",
        },
    )


@bp.route("/certificate")
@login_required
def certificate() -> ResponseReturnValue:
    """The listener's certificate fingerprints (created here if the proxy has not started
    yet, so the page and the listener always agree)."""
    return render_template("rdp/certificate.html", cert=certificate_info(current_core()))
