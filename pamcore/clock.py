"""Time in pamcore is always aware UTC; the clock is injectable so tests and the bench can
move it without sleeping."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

Clock = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    """The wall clock. The core's own time is ``Pamcore.now()``; reach for this only where
    the wall clock must rule (certificate validity, file timestamps), and say so there."""
    return dt.datetime.now(dt.UTC)


def format_utc(moment: dt.datetime, now: dt.datetime) -> str:
    """``14:00 UTC`` when ``moment`` falls on ``now``'s day, ``2026-11-29 14:00 UTC``
    otherwise; used in messages. ``now`` is the core's clock, never the wall clock, so a
    message's "today" agrees with the times it states whatever clock the core runs on."""
    moment = moment.astimezone(dt.UTC)
    if moment.date() == now.astimezone(dt.UTC).date():
        return moment.strftime("%H:%M UTC")
    return moment.strftime("%Y-%m-%d %H:%M UTC")


class FrozenClock:
    """A clock that only moves when told to; for tests, the demo tour and the bench."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.now = start or utcnow()

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now
