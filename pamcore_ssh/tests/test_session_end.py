"""The terminal side of a session's end without peers: the warning names Ctrl+X only when
the profile allows extensions (otherwise ^X goes to the target), and a re-check closes at
once when the core says the session is over."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from pamcore_ssh.session_end import CTRL_X, EndWatch

NOW = dt.datetime(2026, 12, 3, 14, 1)
ENDS = NOW + dt.timedelta(minutes=30)


class Seen:
    """What an EndWatch told its connection."""

    def __init__(self) -> None:
        self.notices: list[str] = []
        self.closed: list[str] = []
        self.extensions = 0
        self.core_says: dt.datetime | None = ENDS

    def watch(self, extendable: bool) -> EndWatch:
        async def extend() -> str:
            self.extensions += 1
            return "session extended"

        async def lookup() -> tuple[dt.datetime | None, dt.datetime]:
            return self.core_says, NOW

        return EndWatch(
            ENDS,
            dt.timedelta(minutes=5),
            extendable,
            extend=extend,
            notify=self.notices.append,
            close=self.closed.append,
            lookup=lookup,
        )


@pytest.mark.parametrize("extendable", [True, False])
def test_the_warning_offers_ctrl_x_only_when_the_profile_allows_it(extendable: bool) -> None:
    seen = Seen()
    watch = seen.watch(extendable)
    watch.update(ENDS, ENDS - dt.timedelta(minutes=4))
    watch.update(ENDS, ENDS - dt.timedelta(minutes=3))  # warned once
    (notice,) = seen.notices
    assert notice.startswith("session ends in 4 minutes")
    assert ("press Ctrl+X to extend" in notice) is extendable
    typed = asyncio.run(watch.filter_input(b"a" + CTRL_X + b"b"))
    assert typed == (b"ab" if extendable else b"a" + CTRL_X + b"b")
    assert seen.extensions == int(extendable)


def test_a_recheck_closes_only_a_session_that_is_over() -> None:
    seen = Seen()
    watch = seen.watch(True)
    asyncio.run(watch.recheck())
    assert (seen.closed, seen.notices) == ([], [])  # far from the end: no early warning
    seen.core_says = None
    asyncio.run(watch.recheck())
    assert seen.closed == ["the session was ended"]
