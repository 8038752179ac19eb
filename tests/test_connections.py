"""Live connections move a session between available and active."""

from __future__ import annotations

import pytest

from pamcore.core import Pamcore
from pamcore.errors import PolicyDenied
from pamcore.lifecycle import Status
from pamcore.model import ActivitySession
from pamcore.services import scheduler
from pamcore.services.common import worker_name
from pamcore.services.connections import connection_closed, connection_opened
from pamcore.services.ending import complete_ending
from pamcore.services.sessions import SessionRequest, create_session, end_session
from tests.conftest import World, fresh


def status(core: Pamcore, sid: int) -> tuple[Status, int]:
    with core.reader() as db:
        s = db.get(ActivitySession, sid)
        return Status(s.status), s.live_connections


def test_first_opens_active_last_closes_available(core: Pamcore, world: World) -> None:
    with core.unit() as db:
        sid = create_session(
            core, db, fresh(db, world.alice), SessionRequest("Check out root", ("db01",))
        ).id
    scheduler.tick(core)

    def opened():
        with core.unit() as db:
            connection_opened(core, db, fresh(db, world.alice), sid, "db01", "ssh")

    def closed():
        with core.unit() as db:
            connection_closed(core, db, fresh(db, world.alice), sid, "db01", "ssh")

    opened()
    assert status(core, sid) == (Status.ACTIVE, 1)
    opened()
    closed()
    assert status(core, sid) == (Status.ACTIVE, 1)
    closed()
    assert status(core, sid) == (Status.AVAILABLE, 0)
    closed()  # a late duplicate close never goes below zero
    assert status(core, sid) == (Status.AVAILABLE, 0)
    opened()
    with core.unit() as db:
        end_session(core, db, fresh(db, world.alice), sid)
    complete_ending(core, sid, worker_name(), "alice")
    assert status(core, sid) == (Status.ENDED, 0)
    closed()  # the proxy closing what the end cut off
    assert status(core, sid) == (Status.ENDED, 0)
    with pytest.raises(PolicyDenied, match="is Ended"):
        opened()
