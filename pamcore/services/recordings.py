"""Session recordings: a protocol plugin registers the file it wrote, with its SHA-256 in
the audit log (so a later edit of the file shows); people list the ones they may replay."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.errors import NotFound, ValidationError
from pamcore.model import ActivitySession, Recording, Resource, Role
from pamcore.services.common import Actor, SystemActor, get_session

ACTOR = "system:proxy"
#: The format protocol plugins write unless they say otherwise.
ASCIICAST_V2 = "asciicast-v2"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def register_recording(
    core: Pamcore,
    db: Session,
    session_id: int,
    resource_id: int | None,
    protocol: str,
    path: Path | str,
    sha256: str,
    size: int,
    started_at: dt.datetime,
    ended_at: dt.datetime | None,
    meta: dict[str, Any] | None = None,
    *,
    file_format: str = ASCIICAST_V2,
) -> Recording:
    """Add the row for a finished recording and the ``recording.saved`` audit event.

    ``meta`` is kept with the row (e.g. terminal size, or ``{"incomplete": reason}`` when
    the recorder failed part-way); an ``incomplete`` reason is audited too.
    """
    session = get_session(db, session_id)
    if not _SHA256.fullmatch(sha256):
        raise ValidationError("sha256", "must be 64 lowercase hexadecimal digits")
    if size < 0:
        raise ValidationError("size", "must not be negative")
    resource = db.get(Resource, resource_id) if resource_id is not None else None
    if resource_id is not None and resource is None:
        raise NotFound(f"no resource with id {resource_id}")
    meta = dict(meta or {})
    recording = Recording(
        session_id=session.id,
        resource_id=resource_id,
        protocol=protocol,
        format=file_format,
        path=str(path),
        sha256=sha256,
        size_bytes=size,
        started_at=started_at,
        ended_at=ended_at,
        meta=meta,
    )
    db.add(recording)
    db.flush()
    extra = {"incomplete": meta["incomplete"]} if "incomplete" in meta else {}
    core.audit(
        db,
        ACTOR,
        "recording.saved",
        target=resource.name if resource else "",
        session_id=session.id,
        recording=recording.id,
        protocol=protocol,
        file=Path(path).name,
        sha256=sha256,
        size_bytes=size,
        **extra,
    )
    return recording


def recorded_bytes(db: Session, session_id: int) -> int:
    """Bytes of the session's registered recordings, so a per-session size cap holds across
    the session's connections."""
    total = db.scalar(
        select(func.coalesce(func.sum(Recording.size_bytes), 0)).where(
            Recording.session_id == session_id
        )
    )
    return int(total or 0)


def recording_failed(
    core: Pamcore, db: Session, session_id: int, resource_id: int | None, protocol: str, reason: str
) -> None:
    """Audit a recording that could not even start (the connection goes on unrecorded); one
    that failed part-way is registered with ``meta={"incomplete": reason}`` instead."""
    resource = db.get(Resource, resource_id) if resource_id is not None else None
    core.audit(
        db,
        ACTOR,
        "recording.failed",
        target=resource.name if resource else "",
        session_id=session_id,
        protocol=protocol,
        reason=reason,
    )


def list_recordings(db: Session, actor: Actor, limit: int = 200) -> list[Recording]:
    """Recordings the actor may replay: all for admins and auditors, else their own
    sessions'. Newest first."""
    query = select(Recording).order_by(Recording.started_at.desc(), Recording.id.desc())
    if not isinstance(actor, SystemActor) and actor.role not in (Role.ADMIN, Role.AUDITOR):
        query = query.join(ActivitySession, Recording.session_id == ActivitySession.id).where(
            ActivitySession.requester_id == actor.id
        )
    return list(db.scalars(query.limit(limit)))


def get_recording(db: Session, actor: Actor, recording_id: int) -> Recording:
    """One recording to replay, under the rule of :func:`list_recordings`; to anyone else
    it does not exist."""
    recording = db.get(Recording, recording_id)
    allowed = recording is not None and (
        isinstance(actor, SystemActor)
        or actor.role in (Role.ADMIN, Role.AUDITOR)
        or get_session(db, recording.session_id).requester_id == actor.id
    )
    if recording is None or not allowed:
        raise NotFound(f"no recording #{recording_id}")
    return recording
