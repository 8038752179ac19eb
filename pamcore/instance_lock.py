"""Instance-wide locks for operations that must never overlap (a master-key rotation).

Two layers, both taken without waiting: an ``flock`` on a file in the instance folder
(every process of this instance on this machine), and on PostgreSQL a session advisory
lock (every node on the shared database). A holder that dies, even by ``kill -9``, drops
both: the kernel closes its file and PostgreSQL ends its session.
"""

from __future__ import annotations

import fcntl
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

from pamcore.core import Pamcore
from pamcore.errors import PamError


class LockBusy(PamError):
    """Another process holds the instance lock asked for."""

    exit_code = 12
    kind = "busy"


@contextmanager
def instance_lock(core: Pamcore, name: str, doing: str) -> Iterator[None]:
    """Hold the lock ``name`` for the block; ``doing`` names the work in the refusal."""
    path = core.config.instance_path / f".{name}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            raise LockBusy(
                f"{doing} is already running (process {holder}); wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        if core.engine.dialect.name != "postgresql":
            yield
            return
        key = zlib.crc32(f"pamcore:{name}".encode())
        with core.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            if not conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}):
                raise LockBusy(f"{doing} is already running on another node; wait for it")
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    finally:
        os.close(fd)
