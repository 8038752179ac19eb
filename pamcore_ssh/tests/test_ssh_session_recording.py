"""Recordings of real ``ssh`` sessions through the proxy: output, resizes and notices but
no typed password, and a recording that cannot start."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pexpect
from proxy_world import TYPED_SECRET, World, shell
from sqlalchemy import select

from pamcore.model import (
    Recording,
)


def test_recording_has_output_resizes_and_notices_but_no_typed_password(world: World) -> None:
    assert world.ssh("alice+web01", "echo not-a-terminal").stdout == "not-a-terminal\n"
    child = shell(world)
    child.sendline("read -s -p 'secret: ' X; echo; echo done-$((6*7)) ${#X}")
    child.expect("secret: ")
    child.sendline(TYPED_SECRET)
    child.expect(f"done-42 {len(TYPED_SECRET)}")  # the target got it; -s: it did not echo
    child.setwinsize(33, 101)
    child.sendline("stty size")
    child.expect("33 101")
    ends = world.session().ends_at
    assert ends is not None
    world.clock.now = ends - dt.timedelta(minutes=4)
    child.expect("session ends in 4 minutes", timeout=5)
    child.sendline("exit")
    child.expect(pexpect.EOF)
    (saved,) = world.audited("recording.saved")  # one: exec without a terminal is not recorded
    with world.core.reader() as db:
        recording = db.scalars(select(Recording)).one()
        db.expunge(recording)
    cast = Path(recording.path)
    folder = world.tmp / "instance" / "recordings" / f"session-{world.session_id}"
    exec_connection, shell_connection = (
        e.details["connection"] for e in world.audited("connection.opened")
    )
    assert exec_connection != shell_connection  # the exec's id was not reused
    assert cast.parent == folder and cast.name == f"{shell_connection}-1.cast"
    assert (folder.stat().st_mode & 0o777, cast.stat().st_mode & 0o777) == (0o700, 0o600)
    raw = cast.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    assert saved.details["sha256"] == recording.sha256 == digest
    assert recording.size_bytes == len(raw)
    header, *events = [json.loads(line) for line in raw.decode().splitlines()]
    assert (header["version"], header["width"], header["height"]) == (2, 80, 24)
    assert {code for _, code, _ in events} == {"o", "r"}
    output = "".join(data for _, code, data in events if code == "o")
    assert "secret: " in output and "done-42" in output and "33 101" in output
    assert "session ends in 4 minutes" in output  # the proxy's notice
    assert [data for _, code, data in events if code == "r"] == ["101x33"]
    assert TYPED_SECRET.encode() not in raw
    times = [t for t, _, _ in events]
    assert times == sorted(times)


def test_a_recording_that_cannot_start_is_audited_and_the_shell_still_works(world: World) -> None:
    folder = world.tmp / "instance" / "recordings" / f"session-{world.session_id}"
    folder.mkdir(parents=True, mode=0o755)
    folder.chmod(0o755)  # open to others: the recorder refuses it
    child = shell(world)
    child.sendline("echo still-$((6*7))")
    child.expect("still-42")
    child.sendline("exit")
    child.expect(pexpect.EOF)
    (failed,) = world.audited("recording.failed")
    assert "is open to other users" in failed.details["reason"]
    assert not world.audited("recording.saved", timeout=0)
