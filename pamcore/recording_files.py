"""The file side of session recordings, shared by the protocol plugins: a private file that
is never overwritten, a writer whose SHA-256 covers exactly the bytes that reached the
disk (a full disk stops the recording, never the relay), and the per-session size cap a
plugin reads from its ``[plugins.<name>]`` section. Registration and its audit event are
in :mod:`pamcore.services.recordings`; a session's budget across nodes is a
:class:`pamcore.services.recording_budgets.SessionBudget`."""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar

from pamcore.config import Config
from pamcore.errors import ConfigurationError

log = logging.getLogger(__name__)

MIB = 1024 * 1024
#: Smallest per-session cap: a header, some content and a closing marker must fit.
MIN_CAP_BYTES = 4096

T = TypeVar("T")


def recording_cap(config: Config, plugin: str, default_mib: float) -> int:
    """The per-session cap in bytes, from ``[plugins.<plugin>] recording_cap_mib``."""
    value = config.plugin_settings.get(plugin, {}).get("recording_cap_mib", default_mib)
    if isinstance(value, bool) or not isinstance(value, int | float) or value * MIB < MIN_CAP_BYTES:
        raise ConfigurationError(
            f"[plugins.{plugin}] recording_cap_mib must be a number of MiB of at least "
            f"{MIN_CAP_BYTES / MIB:.3f}, not {value!r}"
        )
    return int(value * MIB)


class ByteBudget(Protocol):
    """What a recorder may still write: asked before queueing, told after writing."""

    cap: int

    def allows(self, size: int) -> bool: ...

    def spend(self, size: int) -> None: ...


class FixedBudget:
    """A budget of ``cap`` bytes in memory, for a recorder given a plain size cap."""

    def __init__(self, cap: int) -> None:
        if cap < MIN_CAP_BYTES:
            raise ConfigurationError(
                f"recording size cap must be at least {MIN_CAP_BYTES} bytes, not {cap}"
            )
        self.cap = cap
        self.left = cap

    def allows(self, size: int) -> bool:
        return size <= self.left

    def spend(self, size: int) -> None:
        self.left -= size


def create_private(path: Path, root: Path | None = None) -> BinaryIO:
    """Create ``path`` (0600, never overwriting or following a link) in a 0700 folder,
    created if missing (and so is ``root``, the recordings root above it); an existing
    folder open to group or others is refused."""
    for folder in (root, path.parent):
        if folder is not None and not folder.exists():
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            folder.chmod(0o700)  # mkdir's mode is filtered by the umask
    folder = path.parent
    mode = stat.S_IMODE(folder.stat().st_mode)
    if mode & 0o077:
        raise ConfigurationError(
            f"recordings folder {folder} is open to other users (mode {mode:o}); "
            f"run 'chmod 700 {folder}'"
        )
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.fdopen(os.open(path, flags, 0o600), "wb", buffering=0)


def on_private(path: Path, make: Callable[[BinaryIO], T], root: Path | None = None) -> T:
    """``make(out)`` on ``path`` created by :func:`create_private`; the file is closed when
    ``make`` fails (a recorder that cannot write its header)."""
    out = create_private(path, root)
    try:
        return make(out)
    except BaseException:
        out.close()
        raise


class DigestWriter:
    """Writes a recording file; only bytes that reached it enter :attr:`sha256` and
    :attr:`size`. The first write error is kept in :attr:`error` (logged once) and later
    writes are dropped, so a partial file can still be registered with its digest."""

    def __init__(self, out: BinaryIO, name: str) -> None:
        self._out = out
        self._name = name
        self._digest = hashlib.sha256()
        self.size = 0
        self.error: str | None = None

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def write(self, data: bytes | bytearray) -> int:
        """Write all of ``data``; returns how many bytes reached the file."""
        if self.error is not None:
            return 0
        view = memoryview(data)
        written = 0
        try:
            while written < len(view):
                n = self._out.write(view[written:]) or 0
                self._digest.update(view[written : written + n])
                written += n
        except OSError as exc:
            self.fail(exc)
        finally:
            self.size += written
            view.release()
        return written

    def close(self) -> None:
        try:
            self._out.close()
        except OSError as exc:
            self.fail(exc)

    def fail(self, exc: OSError) -> None:
        if self.error is None:
            self.error = f"write failed: {exc.strerror or exc}"
            log.warning("recording %s stopped: %s", self._name, self.error)
