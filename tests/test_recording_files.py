"""The file side of recordings the protocol plugins share: the per-session cap setting,
the private file, and a digest that covers exactly what reached the disk."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from pamcore.config import Config
from pamcore.errors import ConfigurationError
from pamcore.recording_files import (
    MIB,
    DigestWriter,
    create_private,
    recording_cap,
)
from pamcore.testing import FullDisk


def config(settings: dict[str, object]) -> Config:
    return Config(Path("i"), "sqlite://", Path("k"), plugin_settings={"demo": settings})


def test_cap_is_read_from_the_plugins_section_with_a_default() -> None:
    assert recording_cap(config({}), "demo", 2) == 2 * MIB
    assert recording_cap(config({"recording_cap_mib": 0.5}), "demo", 2) == MIB // 2


@pytest.mark.parametrize("bad", ["lots", True, 0, 0.001])
def test_a_bad_cap_names_the_setting(bad: object) -> None:
    with pytest.raises(ConfigurationError, match=r"\[plugins.demo\] recording_cap_mib"):
        recording_cap(config({"recording_cap_mib": bad}), "demo", 2)


def test_private_file_in_private_folders_never_overwritten(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    path = root / "session-1" / "a.log"
    create_private(path, root).close()
    assert [stat.S_IMODE(p.stat().st_mode) for p in (root, path.parent, path)] == [
        0o700,
        0o700,
        0o600,
    ]
    with pytest.raises(FileExistsError):
        create_private(path, root)
    path.parent.chmod(0o750)
    with pytest.raises(ConfigurationError, match="chmod 700"):
        create_private(path.parent / "b.log", root)


def test_digest_covers_what_reached_the_disk_and_later_writes_are_dropped() -> None:
    disk = FullDisk(room=20, chunk=7)
    writer = DigestWriter(disk, "x.log")  # type: ignore[arg-type]
    assert writer.write(b"0123456789") == 10  # in short writes
    assert writer.write(b"abcdefghijklmnop") == 10
    assert writer.error == "write failed: No space left on device"
    assert writer.write(b"more") == 0
    assert (writer.sha256, writer.size) == (hashlib.sha256(bytes(disk.kept)).hexdigest(), 20)
