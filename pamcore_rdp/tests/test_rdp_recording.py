"""The RDP recording: frames split whatever the chunking, what is written for each
direction, the per-session cap, a failing disk, and the registration with its SHA-256
through the core (SQLite and PostgreSQL). End-to-end recording of real sessions, and the
absence of every password from them, is in ``test_relay.py``."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import stat
from pathlib import Path

import pytest
from pamcore_rdp.pdu.wire import x224_data
from pamcore_rdp.proxy.recording import (
    FORMAT,
    ConnectionRecording,
    Frames,
    PduRecorder,
    RecordingIncomplete,
    recording_cap,
)
from pamcore_rdp.proxy.target import PROTOCOL, RdpTarget, rdp_target
from sqlalchemy import select

from pamcore.core import Pamcore
from pamcore.errors import ConfigurationError
from pamcore.model import AuditEvent, Recording, User
from pamcore.proxy import Admitted, admit
from pamcore.services import scheduler
from pamcore.services.recording_budgets import reserve
from pamcore.services.sessions import SessionRequest, create_session
from pamcore.testing import FullDisk
from pamcore.testing import builders as b

#: Two TPKT frames and two fast-path frames (one with a two-byte length), as a target sends.
TPKT_1 = x224_data(b"\x68\x00\x01\x03\xeb\x70\x05hello")
TPKT_2 = x224_data(bytes(300))
FAST_SHORT = bytes([0x00, 0x06]) + b"abcd"
FAST_LONG = bytes([0x00, 0x81, 0x03]) + bytes(0x103 - 3)
STREAM = TPKT_1 + FAST_SHORT + TPKT_2 + FAST_LONG
HEADER = {"session": 7, "user": "alice"}


def lines_of(path: Path) -> list[object]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("chunk", [1, 2, 5, 64, len(STREAM)])
def test_frames_are_whole_whatever_the_chunks(chunk: int) -> None:
    frames = Frames()
    out = []
    for start in range(0, len(STREAM), chunk):
        out += frames.feed(STREAM[start : start + chunk])
    assert out == [TPKT_1, FAST_SHORT, TPKT_2, FAST_LONG]


def test_a_stream_that_stops_being_rdp_is_kept_raw() -> None:
    frames = Frames()
    assert frames.feed(TPKT_1 + b"\x03\x00\x00\x01garbage") == [TPKT_1, b"\x03\x00\x00\x01garbage"]
    assert frames.broken and frames.feed(b"more") == [b"more"]


def test_recorder_writes_server_frames_whole_and_client_input_as_sizes(tmp_path: Path) -> None:
    path = tmp_path / "recordings" / "session-7" / "1-rdp.jsonl"
    recorder = PduRecorder.open(path, HEADER, budget=1 << 20)
    recorder.client_frame(TPKT_1)
    recorder.server(STREAM[:10])
    recorder.server(STREAM[10:])
    recorder.client_bytes(42)
    sha256, size = recorder.close("the client closed the connection", "2026-11-28T10:00:00")

    data = path.read_bytes()
    assert (hashlib.sha256(data).hexdigest(), len(data)) == (sha256, size)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    header, *events, closing = lines_of(path)
    assert header == {"format": FORMAT, **HEADER}
    assert [event[1] for event in events] == ["c", "s", "s", "s", "s", "c"]  # type: ignore[index]
    recorded = [base64.b64decode(e[2]) for e in events if e[2] is not None]  # type: ignore[index]
    assert recorded == [TPKT_1, TPKT_1, FAST_SHORT, TPKT_2, FAST_LONG]
    assert events[-1][2:] == [None, 42]  # type: ignore[index]
    times = [event[0] for event in events]  # type: ignore[index]
    assert times == sorted(times)
    assert closing == {
        "ended": "2026-11-28T10:00:00",
        "reason": "the client closed the connection",
        "bytes": {"client": len(TPKT_1) + 42, "server": len(STREAM)},
    }


def test_recorder_never_overwrites_and_refuses_an_open_folder(tmp_path: Path) -> None:
    folder = tmp_path / "session-1"
    PduRecorder.open(folder / "a.jsonl", HEADER, 1 << 20).close("x", "t")
    with pytest.raises(FileExistsError):
        PduRecorder.open(folder / "a.jsonl", HEADER, 1 << 20)
    folder.chmod(0o755)
    with pytest.raises(ConfigurationError, match="chmod 700"):
        PduRecorder.open(folder / "b.jsonl", HEADER, 1 << 20)


def test_cap_stops_recording_with_a_marker_and_keeps_the_closing_line(tmp_path: Path) -> None:
    path = tmp_path / "capped" / "1-rdp.jsonl"
    recorder = PduRecorder.open(path, HEADER, budget=4096)
    for _ in range(50):
        recorder.server(TPKT_2)
    recorder.close("session end time reached", "t")
    *_, marker, closing = lines_of(path)
    assert recorder.capped and marker == {"capped": "recording size limit reached"}
    assert closing["bytes"]["server"] == 50 * len(TPKT_2)  # type: ignore[index]
    assert path.stat().st_size <= 4096


def test_full_disk_gives_the_digest_of_what_reached_it(tmp_path: Path) -> None:
    disk = FullDisk(room=200)
    recorder = PduRecorder(disk, tmp_path / "x.jsonl", HEADER, budget=1 << 20)  # type: ignore[arg-type]
    recorder.server(TPKT_2)
    recorder.server(TPKT_2)
    with pytest.raises(RecordingIncomplete) as incomplete:
        recorder.close("closed", "t")
    assert incomplete.value.reason == "write failed: No space left on device"
    assert incomplete.value.sha256 == hashlib.sha256(bytes(disk.kept)).hexdigest()
    assert incomplete.value.size == 200


def test_cap_setting_is_validated(core: Pamcore) -> None:
    assert recording_cap(core.config) == 200 * 1024 * 1024
    core.config.plugin_settings["rdp"] = {"recording_cap_mib": "lots"}
    with pytest.raises(ConfigurationError, match=r"\[plugins.rdp\] recording_cap_mib"):
        recording_cap(core.config)


def _admitted(core: Pamcore) -> Admitted[RdpTarget]:
    """alice's connection to lab01, admitted as the listener admits it (its profile
    records, so it has a budget)."""
    with core.unit() as db:
        alice = b.make_user(db, "alice", password="Alice-Rec-Pw1")
        lab = b.make_resource(db, "lab01", protocols={"rdp": 3389})
        cred = b.make_credential(core, db, "lab", "admin", "Vaulted-Rec-Pw2", resource=lab)
        activity = b.make_activity(db, "Desktop", credential=cred)
        profile = b.make_profile(db, "recorded", recording=True)
        b.make_policy(db, "lab", profile, [activity], [lab], [alice])
        user = db.get(User, alice.id)
        assert user is not None
        session_id = create_session(core, db, user, SessionRequest("Desktop", ("lab01",))).id
        user_id = user.id
    scheduler.tick(core)
    return admit(
        core,
        PROTOCOL,
        user_id,
        "lab01",
        session_id=session_id,
        recording_cap=recording_cap(core.config),
        extra=rdp_target,
    )


def test_connection_recording_is_registered_with_its_sha256(core: Pamcore) -> None:
    admitted = _admitted(core)

    async def record() -> ConnectionRecording:
        recording = await ConnectionRecording.start(core, admitted)
        assert recording is not None
        recording.recorder.server(STREAM)
        await recording.finish("the client closed the connection")
        return recording

    recording = asyncio.run(record())
    path = recording.recorder.path
    folder = core.config.recordings_path / f"session-{admitted.session_id}"
    assert path == folder / f"{admitted.connection_id}-rdp.jsonl"
    with core.reader() as db:
        row = db.scalars(select(Recording)).one()
        saved = db.scalars(select(AuditEvent).where(AuditEvent.action == "recording.saved")).one()
        assert (row.format, row.protocol, row.resource_id) == (FORMAT, "rdp", admitted.resource_id)
        assert row.meta == {
            "connection": admitted.connection_id,
            "bytes_client": 0,
            "bytes_server": len(STREAM),
        }
        assert saved.details["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert saved.target == "lab01"


def test_an_existing_file_is_never_overwritten(core: Pamcore) -> None:
    """Connection ids are never reused, so a taken name means files from elsewhere (a
    restored database): the recording is refused and audited, the file kept."""
    admitted = _admitted(core)

    async def record() -> ConnectionRecording | None:
        recording = await ConnectionRecording.start(core, admitted)
        if recording is not None:
            await recording.finish("closed")
        return recording

    first = asyncio.run(record())
    assert first is not None
    kept = first.recorder.path.read_bytes()
    assert asyncio.run(record()) is None
    assert first.recorder.path.read_bytes() == kept
    with core.reader() as db:
        failed = db.scalars(select(AuditEvent).where(AuditEvent.action == "recording.failed")).one()
        assert f"cannot record {admitted.connection_id}-rdp.jsonl" in failed.details["reason"]


def test_a_recording_that_cannot_start_is_audited_and_the_relay_goes_on(core: Pamcore) -> None:
    admitted = _admitted(core)
    core.config.recordings_path.parent.mkdir(parents=True, exist_ok=True)
    core.config.recordings_path.write_text("not a folder")

    assert asyncio.run(ConnectionRecording.start(core, admitted)) is None
    with core.reader() as db:
        failed = db.scalars(select(AuditEvent).where(AuditEvent.action == "recording.failed")).one()
        assert f"cannot record {admitted.connection_id}-rdp.jsonl" in failed.details["reason"]


def test_the_budget_counts_what_the_sessions_other_connections_reserved(
    core: Pamcore,
) -> None:
    admitted = _admitted(core)
    cap = recording_cap(core.config)
    # the session's other connections reserved all but 4 KiB
    assert reserve(core, admitted.session_id, cap - 4096, cap) == cap - 4096

    async def record() -> ConnectionRecording:
        recording = await ConnectionRecording.start(core, admitted)
        assert recording is not None
        for _ in range(50):
            recording.recorder.server(TPKT_2)
        await recording.finish("closed")
        return recording

    recording = asyncio.run(record())
    assert recording.recorder.capped
    assert recording.recorder.path.stat().st_size <= 4096
    with core.reader() as db:
        assert db.scalars(select(Recording)).one().meta["capped"] is True
