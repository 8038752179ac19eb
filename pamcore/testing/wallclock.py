"""A pytest plugin that moves the wall clock for a whole run, to prove the suite does not
depend on the day it runs (``scripts/test-moved-clock``).

``PAMCORE_TEST_WALL_CLOCK`` is either an offset in days from now (``+400``) or a local
time with its zone (``2027-10-30T23:58:30 Europe/Berlin``, which also sets ``TZ``). The
clock keeps ticking from there. Only this process moves (time-machine patches Python's
clock functions); subprocesses such as ``pamcore run`` see the real time. Load it with
``-p pamcore.testing.wallclock``.
"""

from __future__ import annotations

import datetime as dt
import os
from zoneinfo import ZoneInfo

import pytest
import time_machine

ENV = "PAMCORE_TEST_WALL_CLOCK"


def parse_destination(value: str, now: dt.datetime) -> dt.datetime:
    """``+N`` days from ``now``, or ``ISO-LOCAL-TIME ZONE``; a clear error otherwise."""
    value = value.strip()
    try:
        if value.startswith(("+", "-")):
            return now + dt.timedelta(days=int(value))
        local, zone = value.split()
        return dt.datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(zone))
    except (ValueError, KeyError) as exc:
        raise pytest.UsageError(
            f"{ENV}={value!r}: give '+DAYS' or 'YYYY-MM-DDTHH:MM:SS Zone/Name' ({exc})"
        ) from None


def pytest_configure(config: pytest.Config) -> None:
    value = os.environ.get(ENV)
    if not value:
        return
    # The real wall clock, read once to place the destination; nothing else reads it here.
    destination = parse_destination(value, dt.datetime.now(dt.UTC))
    traveller = time_machine.travel(destination, tick=True)
    traveller.start()
    config.add_cleanup(traveller.stop)


def pytest_report_header(config: pytest.Config) -> str | None:
    value = os.environ.get(ENV)
    if not value:
        return None
    return f"wall clock moved ({ENV}={value}): now {dt.datetime.now().astimezone():%c %Z}"
