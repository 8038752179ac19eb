"""The connections a listener holds, and the core's watch over them: session ends,
extensions and administrators' terminations reach each connection, whichever node made
the change (:mod:`pamcore.proxywatch`)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pamcore.core import Pamcore
from pamcore.proxy._admission import Admitted
from pamcore.proxywatch import start_watch
from pamcore.session_changes import SessionChange

C = TypeVar("C")


class LiveConnections(Generic[C]):
    """A listener's live connections (``C``: whatever it keeps per connection), each with
    its :class:`Admitted`; :meth:`watch` hands the core's news about them to the listener."""

    def __init__(self, core: Pamcore, label: str) -> None:
        self.core = core
        self.label = label
        self._held: dict[C, Admitted[Any]] = {}
        self._watch: asyncio.Task[None] | None = None

    def add(self, admitted: Admitted[Any], conn: C) -> None:
        self._held[conn] = admitted

    def discard(self, conn: C) -> None:
        self._held.pop(conn, None)

    def items(self) -> list[tuple[Admitted[Any], C]]:
        return [(admitted, conn) for conn, admitted in self._held.items()]

    def __len__(self) -> int:
        return len(self._held)

    def watch(
        self,
        terminate: Callable[[C, str], None],
        update: Callable[[C, dt.datetime | None, dt.datetime], None],
    ) -> None:
        """Start the watch (in the running loop): ``terminate(conn, reason)`` when an
        administrator terminated a connection or its node was taken for dead;
        ``update(conn, ends_at, now)`` otherwise, ``ends_at`` ``None`` once the session can
        no longer be used. Both run in the loop and must not block."""
        if self._watch is None:
            self._watch = start_watch(self.core, self.label, self.items, terminate, update)

    async def stop_watch(self) -> None:
        """Cancel the watch and wait for it, so it unsubscribes before the loop closes."""
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.cancel()
            await asyncio.wait({watch})


def subscribe(core: Pamcore, callback: Callable[[SessionChange], None]) -> Callable[[], None]:
    """Call ``callback`` with every committed session change, from any thread (hand it
    over, e.g. ``loop.call_soon_threadsafe``); returns the unsubscribe."""
    return core.session_changes.subscribe(callback)
