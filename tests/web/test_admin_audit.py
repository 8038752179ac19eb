"""The Audit page (admins and auditors), its filters and chain check, and the Recordings
page with its in-browser player, for every role."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import update

from pamcore.core import Pamcore
from pamcore.model import AuditEvent
from pamcore.services.recordings import register_recording
from pamcore.services.sessions import SessionRequest, create_session
from tests.web.roles import PEOPLE, build_app, csrf_token, signed_in
from tests.world import World, fresh

CAST = json.dumps({"version": 2, "width": 80, "height": 24}) + '\n[0.5, "o", "hello"]\n'


@pytest.fixture
def app(core: Pamcore, world: World) -> Flask:
    return build_app(core)


@pytest.fixture
def recording(core: Pamcore, world: World, tmp_path: Path) -> int:
    """A recording of one of alice's sessions."""
    path = tmp_path / "s1.cast"
    path.write_text(CAST)
    with core.unit() as db:
        session = create_session(
            core, db, fresh(db, world.alice), SessionRequest("Check out root", ("db01",))
        )
        row = register_recording(
            core,
            db,
            session.id,
            world.db01.id,
            "ssh",
            path,
            hashlib.sha256(CAST.encode()).hexdigest(),
            len(CAST),
            core.now(),
            core.now(),
        )
        return row.id


def test_audit_page_for_every_role(core: Pamcore, app: Flask) -> None:
    for role, name in PEOPLE.items():
        client = signed_in(app, core, name)
        allowed = role in ("admin", "auditor")
        assert client.get("/audit").status_code == (200 if allowed else 403)
        verify = client.post("/audit/verify", data={"csrf_token": csrf_token(app, client)})
        assert verify.status_code == (200 if allowed else 403)
        if allowed:
            assert b"Audit chain intact" in verify.data
            assert client.post("/audit/verify", data={}).status_code == 400  # no CSRF token


def test_audit_filters(core: Pamcore, app: Flask, recording: int) -> None:
    client = signed_in(app, core, "ivy")
    page = client.get("/audit?action=session.&actor=alice").get_data(as_text=True)
    assert "session.requested" in page and "recording.saved" not in page
    page = client.get("/audit?session=1&action=recording").get_data(as_text=True)
    assert "recording.saved" in page and "session.requested" not in page
    assert "No audit events match" in client.get("/audit?since=2099-01-01").get_data(as_text=True)
    assert "session.requested" in client.get("/audit?since=2026-11-28&until=2026-11-28").get_data(
        as_text=True
    )
    bad = client.get("/audit?since=yesterday")
    assert bad.status_code == 400 and b"is not a date" in bad.data
    assert client.get("/audit?until=2026-01-01&since=2026-02-01").status_code == 400


def test_verify_reports_a_tampered_log(core: Pamcore, app: Flask, recording: int) -> None:
    with core.unit() as db:
        db.execute(update(AuditEvent).where(AuditEvent.id == 1).values(actor="mallory"))
    client = signed_in(app, core, "erin")
    page = client.post("/audit/verify", data={"csrf_token": csrf_token(app, client)})
    assert b"Audit chain broken" in page.data and b"event 1: content edited" in page.data


def test_recordings_for_every_role(core: Pamcore, app: Flask, recording: int) -> None:
    for name, sees in (("alice", True), ("bob", False), ("carol", False), ("erin", True)):
        client = signed_in(app, core, name)
        listing = client.get("/recordings")
        assert listing.status_code == 200
        assert (f"/recordings/{recording}" in listing.get_data(as_text=True)) == sees
        assert client.get(f"/recordings/{recording}").status_code == (200 if sees else 404)
        assert client.get(f"/recordings/{recording}/cast").status_code == (200 if sees else 404)
    client = signed_in(app, core, "ivy")
    page = client.get(f"/recordings/{recording}").get_data(as_text=True)
    assert 'data-cast="/recordings/' in page and "asciinema-player.min.js" in page
    cast = client.get(f"/recordings/{recording}/cast")
    assert cast.mimetype == "application/x-asciicast" and cast.get_data(as_text=True) == CAST
    for asset in ("asciinema-player/asciinema-player.min.js", "player.js"):
        assert client.get(f"/static/auditing/{asset}").status_code == 200
    assert app.test_client().get("/recordings").status_code in (302, 303)


def test_missing_recording_file_says_so(
    core: Pamcore, app: Flask, recording: int, tmp_path: Path
) -> None:
    (tmp_path / "s1.cast").unlink()
    missing = signed_in(app, core, "erin").get(f"/recordings/{recording}/cast")
    assert missing.status_code == 404 and b"is missing on this server" in missing.data


def test_a_recording_the_player_cannot_play_downloads_as_an_opaque_file(
    core: Pamcore, app: Flask, world: World, tmp_path: Path
) -> None:
    """A protocol plugin's own format (the RDP PDU log) is offered for download under a
    neutral media type and extension, never as an asciicast the player would choke on."""
    path = tmp_path / "rdp.log"
    path.write_text('{"t": 0.0, "dir": "s2c"}\n')
    with core.unit() as db:
        session = create_session(
            core, db, fresh(db, world.alice), SessionRequest("Check out root", ("db01",))
        )
        row = register_recording(
            core,
            db,
            session.id,
            world.db01.id,
            "rdp",
            path,
            "0" * 64,
            25,
            core.now(),
            core.now(),
            file_format="pamcore-rdp-pdus-v1",
        )
        recording = row.id
    client = signed_in(app, core, "ivy")
    page = client.get(f"/recordings/{recording}").get_data(as_text=True)
    assert "cannot be played in the browser" in page and "asciinema-player.min.js" not in page
    download = client.get(f"/recordings/{recording}/cast?download=1")
    assert download.mimetype == "application/octet-stream"
    assert f"pamcore-recording-{recording}.log" in download.headers["Content-Disposition"]
    assert download.get_data(as_text=True) == path.read_text()
