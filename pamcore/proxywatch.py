"""The watch each protocol proxy runs over its live connections: one small query for all
of them (not one per connection) applies session ends, extensions and administrators'
termination requests, refreshes the node's heartbeat, and closes the connections of nodes
that stopped answering. It runs at once when a session change is announced (on any node,
with PostgreSQL; in this process, with SQLite) and at least once a second.
(docs/design/session-changes.md)"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Iterable
from contextlib import suppress
from typing import Protocol, TypeVar

from pamcore.core import Pamcore
from pamcore.services.connections import close_silent_nodes, heartbeat, live_state
from pamcore.session_changes import SessionChange

log = logging.getLogger(__name__)

WATCH_SECONDS = 1.0
TERMINATED = "terminated by an administrator"

T = TypeVar("T")


class Admitted(Protocol):
    """What the watch needs of an admitted connection (a plugin's ticket or grant)."""

    @property
    def connection_id(self) -> int: ...

    @property
    def session_id(self) -> int: ...


def start_watch(
    core: Pamcore,
    label: str,
    live: Callable[[], Iterable[tuple[Admitted, T]]],
    terminate: Callable[[T, str], None],
    update: Callable[[T, dt.datetime | None, dt.datetime], None],
) -> asyncio.Task[None]:
    """:func:`watch_connections` as the task of a proxy labelled ``label``, which cancels
    it when it stops."""
    return asyncio.create_task(
        watch_connections(core, label, live, terminate, update),
        name=f"{label.replace(' ', '-')}-watch",
    )


async def watch_connections(
    core: Pamcore,
    label: str,
    live: Callable[[], Iterable[tuple[Admitted, T]]],
    terminate: Callable[[T, str], None],
    update: Callable[[T, dt.datetime | None, dt.datetime], None],
    seconds: float = WATCH_SECONDS,
) -> None:
    """Until cancelled, whenever a session change is announced and at least every
    ``seconds``: ``terminate(conn, reason)`` the connections an administrator terminated,
    ``update(conn, ends_at, now)`` the others (``ends_at`` ``None``: the session can no
    longer be used). ``live()`` lists the connections held now; one that arrived during
    the query waits for the next round (its session was not asked about). A failed round
    is logged and retried."""
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()

    def wake(_change: SessionChange) -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(woken.set)

    unsubscribe = core.session_changes.subscribe(wake)
    try:
        while True:
            with suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await woken.wait()
            woken.clear()
            try:
                await _round(core, live, terminate, update)
            except Exception:
                log.exception("%s watch failed; retrying", label)
    finally:
        unsubscribe()


async def _round(
    core: Pamcore,
    live: Callable[[], Iterable[tuple[Admitted, T]]],
    terminate: Callable[[T, str], None],
    update: Callable[[T, dt.datetime | None, dt.datetime], None],
) -> None:
    await asyncio.to_thread(close_silent_nodes, core)
    held = [(admitted.session_id, admitted.connection_id) for admitted, _ in live()]
    if not held:
        return
    ends, doomed = await asyncio.to_thread(_poll, core, held)
    now = core.now()
    for admitted, conn in list(live()):
        if admitted.connection_id in doomed:
            terminate(conn, doomed[admitted.connection_id] or TERMINATED)
        elif admitted.session_id in ends:
            update(conn, ends[admitted.session_id], now)


def _poll(
    core: Pamcore, held: list[tuple[int, int]]
) -> tuple[dict[int, dt.datetime | None], dict[int, str]]:
    """Refresh the node's heartbeat and read what the held (session id, connection id)
    must do, in one unit."""
    with core.unit() as db:
        heartbeat(core, db)
        return live_state(db, [s for s, _ in held], [c for _, c in held])
