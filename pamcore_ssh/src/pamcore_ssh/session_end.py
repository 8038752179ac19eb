"""The session's end as a terminal user meets it: a notice when the remaining time falls
within the profile's warning window, Ctrl+X extending the session *only* inside that
window and when the profile allows extensions (nano and emacs use ^X otherwise), and a
notice before the forced close."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

from pamcore.proxy import format_utc

CTRL_X = b"\x18"


def describe(remaining: dt.timedelta) -> str:
    seconds = max(0, int(remaining.total_seconds()))
    if seconds >= 120:
        return f"{seconds // 60} minutes"
    return f"{seconds} seconds"


class EndWatch:
    """Decides, each time it learns the session's end time, whether to warn or close."""

    def __init__(
        self,
        ends_at: dt.datetime,
        warning: dt.timedelta,
        extendable: bool,
        *,
        extend: Callable[[], Awaitable[str]],
        notify: Callable[[str], None],
        close: Callable[[str], None],
        lookup: Callable[[], Awaitable[tuple[dt.datetime | None, dt.datetime]]],
    ) -> None:
        """``lookup``: the session's end as the core knows it now, and the core's time."""
        self.ends_at = ends_at
        self.warning = warning
        self.extendable = extendable
        self._extend = extend
        self._lookup = lookup
        self._notify = notify
        self._close = close
        #: Inside the warning window: the notice was shown.
        self.warned = False
        #: ... and Ctrl+X is taken as "extend" rather than passed on.
        self.armed = False

    def update(self, ends_at: dt.datetime | None, now: dt.datetime) -> None:
        """``ends_at`` ``None``: the session can no longer be used (ended, canceled)."""
        if ends_at is None:
            self._close("the session was ended")
            return
        if ends_at != self.ends_at:
            self.warned = self.armed = False  # moved (extended elsewhere): warn again when due
        self.ends_at = ends_at
        remaining = ends_at - now
        if remaining <= dt.timedelta(0):
            self._close("session end time reached")
        elif remaining <= self.warning:
            if not self.warned:
                self.warned, self.armed = True, self.extendable
                hint = (
                    "press Ctrl+X to extend"
                    if self.extendable
                    else "the connection profile does not allow extending it"
                )
                self._notify(
                    f"session ends in {describe(remaining)} (at {format_utc(ends_at, now)}); {hint}"
                )
        else:
            self.warned = self.armed = False

    async def recheck(self) -> None:
        """Close now if the session is over, without waiting for the next watch round."""
        ends_at, now = await self._lookup()
        if ends_at is None or ends_at <= now:
            self.update(ends_at, now)

    async def filter_input(self, data: bytes) -> bytes:
        """Keystrokes from a terminal: inside the window, ^X asks for an extension and is
        not passed to the target; outside it, everything passes untouched."""
        if not self.armed or CTRL_X not in data:
            return data
        self._notify(await self._extend())
        return data.replace(CTRL_X, b"")
