"""asciicast v2 recorder: parsed back line by line as JSON, as a player would read it."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pamcore_ssh.recording import (
    CAP_MARKER,
    FLUSH_BYTES,
    FLUSH_INTERVAL,
    Recorder,
    RecordingFailed,
)
from pamcore_ssh.session_recording import DEFAULT_CAP_MIB, SessionRecordings, recording_cap

from pamcore.config import Config
from pamcore.errors import ConfigurationError, ProtocolError
from pamcore.proxy import MIB
from pamcore.recording_files import FixedBudget
from pamcore.testing import FullDisk


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def parse(path: Path) -> tuple[dict[str, Any], list[list[Any]]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return json.loads(lines[0]), [json.loads(line) for line in lines[1:]]


def output_text(events: list[list[Any]]) -> str:
    return "".join(e[2] for e in events if e[1] == "o")


@pytest.fixture
def cast(tmp_path: Path) -> Path:
    return tmp_path / "recordings" / "7-1.cast"


def clocked(cast: Path, cap: int | FixedBudget, clock: FakeClock) -> Recorder:
    """A recorder on a hand-moved clock (the file opened plainly, not through ``open``)."""
    cast.parent.mkdir(mode=0o700, exist_ok=True)
    return Recorder(cast.open("wb", buffering=0), cast, 80, 24, cap, clock=clock)


def test_round_trip(cast: Path) -> None:
    rec = Recorder.open(cast, 80, 24, 1 << 20, term="xterm")
    rec.output(b"$ ls\r\n")
    rec.resize(132, 40)
    rec.output(b"a  b  c\r\n$ ")
    sha, size = rec.close()
    header, events = parse(cast)
    assert header["version"] == 2 and header["width"] == 80 and header["height"] == 24
    assert header["env"] == {"TERM": "xterm"} and isinstance(header["timestamp"], int)
    assert [e[1] for e in events] == ["o", "r", "o"]
    assert events[1][2] == "132x40"
    assert output_text(events) == "$ ls\r\na  b  c\r\n$ "
    data = cast.read_bytes()
    assert (sha, size) == (hashlib.sha256(data).hexdigest(), len(data))


def test_file_0600_in_a_0700_folder(cast: Path) -> None:
    Recorder.open(cast, 80, 24, 1 << 20).close()
    assert stat.S_IMODE(cast.stat().st_mode) == 0o600
    assert stat.S_IMODE(cast.parent.stat().st_mode) == 0o700
    with pytest.raises(FileExistsError):  # never overwrites a recording
        Recorder.open(cast, 80, 24, 1 << 20)


def test_a_folder_open_to_others_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    with pytest.raises(ConfigurationError, match="chmod 700"):
        Recorder.open(folder / "x.cast", 80, 24, 1 << 20)
    assert not (folder / "x.cast").exists()


def test_timestamps_monotonic_relative_and_coalesced(cast: Path) -> None:
    clock = FakeClock()
    rec = clocked(cast, 1 << 20, clock)
    for _ in range(5):  # within one flush interval: one event, stamped at its first chunk
        clock.t += 0.001
        rec.output(b"x")
    clock.t += 1.0
    rec.output(b"y")  # after a pause: a new event, stamped when it came
    clock.t += 0.5
    rec.resize(100, 30)
    clock.t += 2.0
    rec.output(b"z")
    rec.close()
    _, events = parse(cast)
    assert [(e[1], e[2]) for e in events] == [
        ("o", "xxxxx"),
        ("o", "y"),
        ("r", "100x30"),
        ("o", "z"),
    ]
    times = [e[0] for e in events]
    assert times == sorted(times)
    assert times == pytest.approx([0.001, 1.005, 1.505, 3.505])


def test_bulk_output_flushes_every_64_kib(cast: Path) -> None:
    clock = FakeClock()
    rec = clocked(cast, 1 << 24, clock)
    for _ in range(8):
        rec.output(b"a" * (FLUSH_BYTES // 4))
    assert len(parse(cast)[1]) == 2  # written before close, without waiting for a timer
    rec.close()
    assert output_text(parse(cast)[1]) == "a" * FLUSH_BYTES * 2


def test_timer_emits_the_last_chunk_inside_an_event_loop(cast: Path) -> None:
    """The prompt the target sends last is on disk after ~50 ms, not only at close."""

    async def run() -> None:
        rec = Recorder.open(cast, 80, 24, 1 << 20)
        rec.output(b"$ ")
        assert len(parse(cast)[1]) == 0
        await asyncio.sleep(FLUSH_INTERVAL * 3)
        assert parse(cast)[1][0][1:] == ["o", "$ "]
        rec.close()

    asyncio.run(run())


def test_utf8_split_across_chunks_stays_intact(cast: Path) -> None:
    text = "é ✓ 𝄞 ok"
    data = text.encode()
    rec = Recorder.open(cast, 80, 24, 1 << 20)
    for i in range(len(data)):  # one byte at a time: every sequence is split
        rec.output(data[i : i + 1])
    rec.output(b"\xe2\x9c")  # an unfinished sequence at the end becomes U+FFFD
    rec.close()
    assert output_text(parse(cast)[1]) == text + "\ufffd"
    assert "✓" in cast.read_text(encoding="utf-8")  # not \u-escaped (ensure_ascii=False)


def test_size_cap_writes_one_marker_then_drops(cast: Path) -> None:
    cap = 8192
    clock = FakeClock()
    rec = clocked(cast, cap, clock)
    for i in range(200):
        clock.t += 1
        rec.output(f"line {i:03d} ".encode() * 4)
    rec.resize(10, 10)
    sha, size = rec.close()
    _, events = parse(cast)
    markers = [e for e in events if e[1] == "m"]
    assert markers == [[markers[0][0], "m", CAP_MARKER]]
    assert events[-1][1] == "m"  # nothing after the marker, not even the resize
    assert size == cast.stat().st_size <= cap
    assert sha == hashlib.sha256(cast.read_bytes()).hexdigest()
    assert "line 000" in output_text(events) and "line 199" not in output_text(events)


def test_cap_below_minimum_is_a_configuration_error(cast: Path) -> None:
    with pytest.raises(ConfigurationError, match="at least"):
        Recorder.open(cast, 80, 24, 100)


def test_a_shared_budget_caps_a_sessions_channels_together(cast: Path) -> None:
    budget = FixedBudget(8192)
    clock = FakeClock()
    first = clocked(cast, budget, clock)
    second = clocked(cast.with_name("7-2.cast"), budget, clock)
    for i in range(200):
        clock.t += 1
        (first if i % 2 else second).output(f"line {i:03d} ".encode() * 4)
    sizes = [rec.close()[1] for rec in (first, second)]
    assert all(parse(rec.path)[1][-1][2] == CAP_MARKER for rec in (first, second))
    assert sum(sizes) <= budget.cap + 128  # each file may pass it by its marker line
    assert sum(sizes) > budget.cap // 2  # and both used it


@pytest.mark.parametrize(
    ("settings", "expected"),
    [({}, DEFAULT_CAP_MIB * MIB), ({"recording_cap_mib": 1.5}, 3 * MIB // 2)],
)
def test_recording_cap_from_plugins_ssh(settings: dict[str, Any], expected: int) -> None:
    config = Config(Path("i"), "sqlite://", Path("k"), plugin_settings={"ssh": settings})
    assert recording_cap(config) == expected


@pytest.mark.parametrize("bad", ["50", 0, -1, True])
def test_a_bad_recording_cap_is_a_configuration_error(bad: object) -> None:
    config = Config(
        Path("i"), "sqlite://", Path("k"), plugin_settings={"ssh": {"recording_cap_mib": bad}}
    )
    with pytest.raises(ConfigurationError, match="recording_cap_mib"):
        recording_cap(config)


def test_full_disk_does_not_raise_until_close(cast: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    disk = FullDisk(room=300)
    rec = Recorder(disk, cast, 80, 24, 1 << 20, clock=clock)  # type: ignore[arg-type]
    for _ in range(50):  # the relay keeps calling; nothing raises
        clock.t += 1
        rec.output(b"some output\r\n")
        rec.resize(80, 25)
    assert rec.failed
    with pytest.raises(RecordingFailed) as info:
        rec.close()
    err = info.value
    assert isinstance(err, ProtocolError)
    assert str(err) == "recording 7-1.cast is incomplete: write failed: No space left on device"
    data = bytes(disk.kept)
    assert len(data) == err.size == 300  # what fitted before the disk filled up
    assert err.sha256 == hashlib.sha256(data).hexdigest()
    assert len([r for r in caplog.records if "stopped" in r.getMessage()]) == 1  # logs once


def test_input_is_never_recorded(cast: Path) -> None:
    """The recorder has no input path at all: a relay can only hand it what the target
    sends. A password typed at a no-echo prompt goes target-wards and never reaches the
    file (what a target prints back, e.g. a misconfigured echo, is output and would be)."""
    typed = "Typed-S3cret!"
    rec = Recorder.open(cast, 80, 24, 1 << 20)
    assert not any(hasattr(rec, name) for name in ("input", "keystroke", "user_input"))
    rec.output(b"[sudo] password for alice: ")
    # ... the relay forwards `typed` to the target only; the target does not echo it ...
    rec.output(b"\r\nroot@web01:~# ")
    rec.close()
    raw = cast.read_text(encoding="utf-8")
    assert typed not in raw
    assert {e[1] for e in parse(cast)[1]} <= {"o", "r", "m"}


def test_each_channel_of_a_connection_has_its_own_cast(tmp_path: Path) -> None:
    """``<connection>-<channel>.cast`` in the session's private folder. Stand-ins (named so)
    for the core, admitted connection and terminal: opening a recorder reads only these
    attributes."""
    core_standin = SimpleNamespace(
        config=SimpleNamespace(recordings_path=tmp_path / "recordings"),
        now=lambda: dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )
    admitted_standin = SimpleNamespace(connection_id=7, session_id=3)
    terminal_standin = SimpleNamespace(term_size=(80, 24, 0, 0), term_type="xterm")
    recordings = SessionRecordings(core_standin, admitted_standin, FixedBudget(1 << 20), print)  # type: ignore[arg-type]

    def channel() -> Path:
        recorder = recordings.start(terminal_standin)  # type: ignore[arg-type]
        assert recorder is not None
        recorder.close()
        return recorder.path

    first, second = channel(), channel()
    assert (first.name, second.name) == ("7-1.cast", "7-2.cast")
    assert first.parent == second.parent == tmp_path / "recordings" / "session-3"
    assert stat.S_IMODE((tmp_path / "recordings").stat().st_mode) == 0o700
