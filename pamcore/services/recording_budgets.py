"""One recording size cap per session across every proxy node: the bytes a session's
recordings may take are reserved from a counter in the database (docs/design/single-use.md),
so two proxies recording the same session stop at one cap, and a restart forgets nothing.
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from pamcore.core import Pamcore
from pamcore.model import RecordingBudget
from pamcore.services.recordings import recorded_bytes

log = logging.getLogger(__name__)

#: Bytes a node reserves at a time: a relay asks the database once per 256 KiB recorded,
#: never per write.
CHUNK_BYTES = 256 * 1024
#: A chunk is at most this share of the cap, so a small cap is not all held by one
#: connection's unused allowance while another connection of the session records.
CHUNKS_PER_CAP = 16

TABLE = RecordingBudget.__table__


def reserve(core: Pamcore, session_id: int, wanted: int, cap: int) -> int:
    """Reserve up to ``wanted`` bytes for the session's recordings, never past ``cap``; how
    many were granted (0 once the cap is reached). The row is locked (PostgreSQL) or the
    database write-locked (SQLite) from read to update, so concurrent reservations on any
    node add up exactly. A session's first reservation counts what it registered before."""
    with core.unit() as db:
        dialect = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
        db.execute(
            dialect.insert(TABLE)
            .values(session_id=session_id, reserved_bytes=recorded_bytes(db, session_id))
            .on_conflict_do_nothing()
        )
        reserved = db.execute(
            select(TABLE.c.reserved_bytes).where(TABLE.c.session_id == session_id).with_for_update()
        ).scalar_one()
        granted = max(0, min(wanted, cap - reserved))
        if granted:
            db.execute(
                update(TABLE)
                .where(TABLE.c.session_id == session_id)
                .values(reserved_bytes=TABLE.c.reserved_bytes + granted)
            )
        return granted


def release(core: Pamcore, session_id: int, unused: int) -> None:
    """Give back what a connection reserved and did not write, for the session's others."""
    if unused <= 0:
        return
    with core.unit() as db:
        db.execute(
            update(TABLE)
            .where(TABLE.c.session_id == session_id)
            .values(reserved_bytes=TABLE.c.reserved_bytes - unused)
        )


class SessionBudget:
    """A connection's share of its session's recording budget: recorders spend from a local
    allowance and top it up from the database in chunks (:data:`CHUNK_BYTES`). The top-up
    runs in the caller's thread (the relay's event loop), once per chunk: a short statement
    against a stall of every relayed byte."""

    def __init__(self, core: Pamcore, session_id: int, cap: int) -> None:
        self.core = core
        self.session_id = session_id
        self.cap = cap
        self.chunk = max(1, min(CHUNK_BYTES, cap // CHUNKS_PER_CAP))
        #: Reserved here and not written yet (a marker line may take it below zero).
        self.left = 0

    def allows(self, size: int) -> bool:
        """Whether ``size`` more bytes fit, reserving more from the session's cap when the
        allowance is short. A database failure is logged and counts as the cap reached:
        recording stops, the relay goes on."""
        if size <= self.left:
            return True
        try:
            self.left += reserve(
                self.core, self.session_id, max(self.chunk, size - self.left), self.cap
            )
        except SQLAlchemyError as exc:
            log.warning(
                "session #%s: cannot reserve recording bytes (%s); recording stops",
                self.session_id,
                type(exc).__name__,
            )
            return False
        return size <= self.left

    def spend(self, size: int) -> None:
        self.left -= size

    def release(self) -> None:
        """Give the unwritten allowance back, once the connection's recorders are closed
        (a failure is logged: the session's cap only comes sooner)."""
        unused, self.left = self.left, 0
        try:
            release(self.core, self.session_id, unused)
        except SQLAlchemyError as exc:
            log.warning(
                "session #%s: cannot release %d recording bytes (%s)",
                self.session_id,
                unused,
                type(exc).__name__,
            )
