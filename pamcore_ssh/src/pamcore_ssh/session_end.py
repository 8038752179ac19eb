"""The session's end as a terminal user meets it: a notice when the remaining time falls
within the profile's warning window, Ctrl+X extending the session *only* inside that
window (nano and emacs use ^X outside it), and a notice before the forced close."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

from pamcore.clock import format_utc

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
        *,
        extend: Callable[[], Awaitable[str]],
        notify: Callable[[str], None],
        close: Callable[[str], None],
    ) -> None:
        self.ends_at = ends_at
        self.warning = warning
        self._extend = extend
        self._notify = notify
        self._close = close
        #: Inside the warning window: Ctrl+X is taken as "extend" rather than passed on.
        self.armed = False

    def update(self, ends_at: dt.datetime | None, now: dt.datetime) -> None:
        """``ends_at`` ``None``: the session can no longer be used (ended, canceled)."""
        if ends_at is None:
            self._close("the session was ended")
            return
        if ends_at != self.ends_at:
            self.armed = False  # moved (extended elsewhere): warn again when due
        self.ends_at = ends_at
        remaining = ends_at - now
        if remaining <= dt.timedelta(0):
            self._close("session end time reached")
        elif remaining <= self.warning:
            if not self.armed:
                self.armed = True
                self._notify(
                    f"session ends in {describe(remaining)} (at {format_utc(ends_at, now)}); "
                    f"press Ctrl+X to extend"
                )
        else:
            self.armed = False

    async def filter_input(self, data: bytes) -> bytes:
        """Keystrokes from a terminal: inside the window, ^X asks for an extension and is
        not passed to the target; outside it, everything passes untouched."""
        if not self.armed or CTRL_X not in data:
            return data
        self._notify(await self._extend())
        return data.replace(CTRL_X, b"")
