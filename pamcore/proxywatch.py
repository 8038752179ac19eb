"""The once-a-second watch each protocol proxy runs over its live connections: one small
query a second for all of them (not one per connection) applies session ends, extensions
and administrators' termination requests."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

from pamcore.core import Pamcore
from pamcore.services.connections import live_state

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
    """Every ``seconds`` until cancelled: ``terminate(conn, reason)`` the connections an
    administrator terminated, ``update(conn, ends_at, now)`` the others (``ends_at``
    ``None``: the session can no longer be used). ``live()`` lists the connections held
    now; one that arrived during the query waits for the next round (its session was
    not asked about). A failed query is logged and retried."""
    while True:
        await asyncio.sleep(seconds)
        session_ids = [admitted.session_id for admitted, _ in live()]
        if not session_ids:
            continue
        try:
            ends, doomed = await asyncio.to_thread(_poll, core, session_ids)
        except Exception:
            log.exception("%s watch failed; retrying", label)
            continue
        now = core.now()
        for admitted, conn in list(live()):
            if admitted.connection_id in doomed:
                terminate(conn, doomed[admitted.connection_id] or TERMINATED)
            elif admitted.session_id in ends:
                update(conn, ends[admitted.session_id], now)


def _poll(
    core: Pamcore, session_ids: list[int]
) -> tuple[dict[int, dt.datetime | None], dict[int, str]]:
    with core.reader() as db:
        return live_state(db, session_ids)
