"""Recording files and their registration: a proxy writes the file within its session's
budget, then registers it (SHA-256 audited) without blocking its loop or failing the
connection."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.proxy._admission import Admitted
from pamcore.services import recordings
from pamcore.services.recordings import ASCIICAST_V2

log = logging.getLogger(__name__)


async def register_recording(
    core: Pamcore,
    admitted: Admitted[Any],
    path: Path | str,
    sha256: str,
    size: int,
    started_at: dt.datetime,
    ended_at: dt.datetime | None,
    meta: dict[str, Any] | None = None,
    *,
    file_format: str = ASCIICAST_V2,
) -> None:
    """Register a finished recording of the connection (``meta={"incomplete": reason}``
    when the recorder failed part-way)."""
    await _in_unit(
        core,
        admitted,
        lambda db: recordings.register_recording(
            core,
            db,
            admitted.session_id,
            admitted.resource_id,
            admitted.protocol,
            path,
            sha256,
            size,
            started_at,
            ended_at,
            meta,
            file_format=file_format,
        ),
    )


async def recording_failed(core: Pamcore, admitted: Admitted[Any], reason: str) -> None:
    """Audit a recording that could not even start; the connection goes on unrecorded."""
    await _in_unit(
        core,
        admitted,
        lambda db: recordings.recording_failed(
            core, db, admitted.session_id, admitted.resource_id, admitted.protocol, reason
        ),
    )


async def _in_unit(
    core: Pamcore, admitted: Admitted[Any], work: Callable[[Session], object]
) -> None:
    """``work(db)`` in a unit, in a worker thread, shielded from the caller's cancellation;
    a failure is logged (a recording is never a reason to fail the connection)."""

    def run() -> None:
        with core.unit() as db:
            work(db)

    try:
        await asyncio.shield(asyncio.to_thread(run))
    except Exception:
        log.exception(
            "registering a recording of %s connection #%s failed",
            admitted.protocol,
            admitted.connection_id,
        )
