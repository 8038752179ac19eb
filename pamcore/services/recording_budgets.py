"""One recording size cap per session across every proxy node: the bytes a session's
recordings may take are reserved from a counter in the database (docs/design/single-use.md),
so two proxies recording the same session stop at one cap, and a restart forgets nothing.
"""

from __future__ import annotations

import asyncio
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
    many were granted (0 once the cap is reached). Usually one conditional ``UPDATE``;
    near the cap (or first) the row is locked (PostgreSQL) or the database write-locked
    (SQLite) from read to update, so concurrent reservations on any node add up exactly.
    A session's first reservation counts what it registered before."""
    row = TABLE.c.session_id == session_id
    with core.unit() as db:
        fits = db.execute(
            update(TABLE)
            .where(row, TABLE.c.reserved_bytes + wanted <= cap)
            .values(reserved_bytes=TABLE.c.reserved_bytes + wanted)
        )
        if fits.rowcount == 1:
            return wanted
        dialect = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
        db.execute(
            dialect.insert(TABLE)
            .values(session_id=session_id, reserved_bytes=recorded_bytes(db, session_id))
            .on_conflict_do_nothing()
        )
        reserved = db.execute(select(TABLE.c.reserved_bytes).where(row).with_for_update())
        granted = max(0, min(wanted, cap - reserved.scalar_one()))
        if granted:
            db.execute(
                update(TABLE).where(row).values(reserved_bytes=TABLE.c.reserved_bytes + granted)
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
    allowance reserved from the database in chunks (:data:`CHUNK_BYTES`), never per write.
    Inside an event loop (a relay) the next chunk is reserved in a worker thread as soon as
    less than a chunk is left, so the loop does not wait on the database; it waits only for
    the first chunk, or when the allowance runs out first (and outside a loop, where every
    top-up waits).

    Used from one thread, the relay's loop: the worker thread only reserves, and its grant
    is added back in the loop."""

    def __init__(self, core: Pamcore, session_id: int, cap: int) -> None:
        self.core = core
        self.session_id = session_id
        self.cap = cap
        self.chunk = max(1, min(CHUNK_BYTES, cap // CHUNKS_PER_CAP))
        #: Reserved here and not written yet (a marker line may take it below zero).
        self.left = 0
        self._topping_up = False
        #: Released while a top-up was under way: its grant goes straight back.
        self._give_back_top_up = False

    def allows(self, size: int) -> bool:
        """Whether ``size`` more bytes fit, reserving more from the session's cap when the
        allowance is short. A database failure is logged and counts as the cap reached:
        recording stops, the relay goes on."""
        if size > self.left:
            self.left += self._reserve(max(self.chunk, size - self.left))
        if size <= self.left and self.left - size < self.chunk:
            self._top_up_in_background()
        return size <= self.left

    def spend(self, size: int) -> None:
        self.left -= size

    def release(self) -> None:
        """Give the unwritten allowance back, once the connection's recorders are closed
        (a failure is logged: the session's cap only comes sooner)."""
        unused, self.left = self.left, 0
        self._give_back_top_up = self._topping_up
        self._give_back(unused)

    def _top_up_in_background(self) -> None:
        if self._topping_up:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: the next short allowance reserves in place
        self._topping_up = True
        loop.run_in_executor(None, self._reserve, self.chunk).add_done_callback(self._topped_up)

    def _topped_up(self, done: asyncio.Future[int]) -> None:
        self._topping_up = False
        granted = 0 if done.cancelled() else done.result()
        if self._give_back_top_up:  # rare: released while it was under way
            self._give_back_top_up = False
            self._give_back(granted)
        else:
            self.left += granted

    def _reserve(self, wanted: int) -> int:
        try:
            return reserve(self.core, self.session_id, wanted, self.cap)
        except SQLAlchemyError as exc:
            log.warning(
                "session #%s: cannot reserve recording bytes (%s); recording stops",
                self.session_id,
                type(exc).__name__,
            )
            return 0

    def _give_back(self, unused: int) -> None:
        try:
            release(self.core, self.session_id, unused)
        except SQLAlchemyError as exc:
            log.warning(
                "session #%s: cannot release %d recording bytes (%s)",
                self.session_id,
                unused,
                type(exc).__name__,
            )
