"""Registering a finished recording (row + audited SHA-256) and who may list which."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from pamcore import audit
from pamcore.core import Pamcore
from pamcore.errors import NotFound, ValidationError
from pamcore.model import AuditEvent, Recording, Role
from pamcore.services.common import SystemActor
from pamcore.services.recordings import (
    list_recordings,
    recorded_bytes,
    recording_failed,
    register_recording,
)
from pamcore.testing import builders as b
from tests.world import World, fresh, requested_session, saved_recording


def test_register_adds_row_and_audits_the_digest(
    core: Pamcore, world: World, tmp_path: Path
) -> None:
    sid = requested_session(core, world.alice)
    rid = saved_recording(core, world, sid, tmp_path)
    with core.reader() as db:
        rec = db.get(Recording, rid)
        assert (rec.session_id, rec.protocol, rec.format) == (sid, "ssh", "asciicast-v2")
        assert rec.path == str(tmp_path / f"{sid}.cast") and rec.meta["width"] == 80
        event = db.scalar(select(AuditEvent).where(AuditEvent.action == "recording.saved"))
        assert (event.session_id, event.target, event.actor) == (sid, "db01", "system:proxy")
        assert event.details["sha256"] == rec.sha256 and len(rec.sha256) == 64
        assert event.details["size_bytes"] == rec.size_bytes
        assert event.details["file"] == f"{sid}.cast" and "incomplete" not in event.details
        assert audit.verify_chain(db, core.audit_keys.keyring)[1] == []


def test_an_incomplete_recording_says_why_in_the_audit(
    core: Pamcore, world: World, tmp_path: Path
) -> None:
    sid = requested_session(core, world.alice)
    saved_recording(core, world, sid, tmp_path, incomplete="write failed: No space left on device")
    with core.reader() as db:
        event = db.scalar(select(AuditEvent).where(AuditEvent.action == "recording.saved"))
        assert event.details["incomplete"] == "write failed: No space left on device"


def test_recorded_bytes_sum_a_sessions_files_and_a_failure_to_start_is_audited(
    core: Pamcore, world: World, tmp_path: Path
) -> None:
    sid = requested_session(core, world.alice)
    with core.reader() as db:
        assert recorded_bytes(db, sid) == 0
    saved_recording(core, world, sid, tmp_path)
    with core.unit() as db:
        assert recorded_bytes(db, sid) == (tmp_path / f"{sid}.cast").stat().st_size
        recording_failed(core, db, sid, world.db01.id, "ssh", "cannot record 1-1.cast: disk full")
    with core.reader() as db:
        event = db.scalar(select(AuditEvent).where(AuditEvent.action == "recording.failed"))
        assert (event.session_id, event.target, event.details["reason"]) == (
            sid,
            "db01",
            "cannot record 1-1.cast: disk full",
        )


def test_register_rejects_bad_input(core: Pamcore, world: World, tmp_path: Path) -> None:
    sid = requested_session(core, world.alice)
    now = core.now()
    with pytest.raises(ValidationError, match="sha256"), core.unit() as db:
        register_recording(core, db, sid, None, "ssh", tmp_path / "x", "abc", 1, now, now)
    with pytest.raises(ValidationError, match="sha256"), core.unit() as db:
        newline = "0" * 64 + "\n"  # re.match(...$) let a trailing newline through
        register_recording(core, db, sid, None, "ssh", tmp_path / "x", newline, 1, now, now)
    with pytest.raises(NotFound, match="#999"), core.unit() as db:
        register_recording(core, db, 999, None, "ssh", tmp_path / "x", "0" * 64, 1, now, now)
    with core.reader() as db:
        assert db.scalars(select(Recording)).all() == []


def test_users_list_their_own_admins_and_auditors_all(
    core: Pamcore, world: World, tmp_path: Path
) -> None:
    mine = saved_recording(core, world, requested_session(core, world.alice), tmp_path)
    theirs = saved_recording(core, world, requested_session(core, world.bob), tmp_path)
    with core.unit() as db:
        ida = b.make_user(db, "ida", Role.AUDITOR)
    with core.reader() as db:
        assert [r.id for r in list_recordings(db, fresh(db, world.alice))] == [mine]
        assert [r.id for r in list_recordings(db, fresh(db, world.bob))] == [theirs]
        assert [r.id for r in list_recordings(db, fresh(db, world.carol))] == []
        everyone = sorted([mine, theirs])
        assert sorted(r.id for r in list_recordings(db, fresh(db, world.erin))) == everyone
        assert sorted(r.id for r in list_recordings(db, fresh(db, ida))) == everyone
        assert sorted(r.id for r in list_recordings(db, SystemActor())) == everyone
