"""One clock: every time people read is stated against the core's clock, whatever the wall
clock says (the frozen clock here sits more than a year away from the wall clock's day)."""

from __future__ import annotations

import datetime as dt

import pytest

from pamcore.clock import FrozenClock, format_utc, utcnow
from pamcore.core import Pamcore
from pamcore.errors import PolicyDenied
from pamcore.model import AuditEvent
from pamcore.services.access import authorize_connection
from pamcore.services.approvals import approve_session
from pamcore.services.sessions import SessionRequest, create_session
from tests.world import World, fresh

#: 10:00 on a day 400 days after the wall clock's: never the wall clock's day.
FAR = utcnow().replace(hour=10, minute=0, second=0, microsecond=0) + dt.timedelta(days=400)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(FAR)


def test_format_utc_states_the_date_only_off_the_given_day() -> None:
    now = dt.datetime(2031, 5, 6, 23, 30, tzinfo=dt.UTC)
    assert format_utc(now + dt.timedelta(minutes=20), now) == "23:50 UTC"
    assert format_utc(now + dt.timedelta(minutes=40), now) == "2031-05-07 00:10 UTC"
    # ``now`` in another zone is the same instant: its UTC day decides.
    paris = now.astimezone(dt.timezone(dt.timedelta(hours=2)))
    assert format_utc(now - dt.timedelta(hours=1), paris) == "22:30 UTC"


def _scheduled_refusal(core: Pamcore, world: World, start: dt.datetime) -> str:
    with core.unit() as db:
        request = SessionRequest("Linux Admin", ("web01",), start=start)
        sid = create_session(core, db, fresh(db, world.alice), request).id
    with core.unit() as db:
        approve_session(core, db, fresh(db, world.carol), sid)
    with pytest.raises(PolicyDenied) as err, core.unit() as db:
        authorize_connection(core, db, fresh(db, world.alice), fresh(db, world.web01), "ssh", None)
    return str(err.value)


@pytest.mark.parametrize(
    ("hours", "expected"),
    [
        (4, "is scheduled for 14:00 UTC"),
        (28, f"is scheduled for {(FAR + dt.timedelta(days=1)):%Y-%m-%d} 14:00 UTC"),
    ],
)
def test_refusal_names_the_date_only_off_the_core_clocks_day(
    core: Pamcore, world: World, clock: FrozenClock, hours: int, expected: str
) -> None:
    assert core.now().date() != utcnow().date()
    message = _scheduled_refusal(core, world, clock.now + dt.timedelta(hours=hours))
    assert expected in message


def test_rows_are_stamped_with_the_core_clock(core: Pamcore, world: World) -> None:
    with core.unit() as db:
        request = SessionRequest("Linux Admin", ("web01",))
        session = create_session(core, db, fresh(db, world.alice), request)
    with core.reader() as db:
        assert fresh(db, session).created_at == FAR
        assert fresh(db, world.alice).created_at == FAR
        assert {event.at for event in db.query(AuditEvent)} == {FAR}
