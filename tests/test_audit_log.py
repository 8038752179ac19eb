"""Reading the audit log through the service: auditors and admins only, filters, chain."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update

from pamcore.core import Pamcore
from pamcore.errors import PolicyDenied, ValidationError
from pamcore.model import AuditEvent, Role, User
from pamcore.services.audit_log import AuditFilter, check_chain, list_events
from pamcore.services.common import CONSOLE
from pamcore.services.sessions import SessionRequest, create_session
from pamcore.testing import builders as b
from tests.world import World, fresh


def test_filters_and_roles(core: Pamcore, world: World) -> None:
    with core.unit() as db:
        create_session(core, db, fresh(db, world.alice), SessionRequest("Linux Admin", ("web01",)))
        auditor = b.make_user(db, "ivy", Role.AUDITOR)
        auditor_id = auditor.id
    with core.reader() as db:
        ivy = db.get(User, auditor_id)
        assert [e.action for e in list_events(db, ivy, AuditFilter(action="session."))] == [
            "session.requested"
        ]
        assert list_events(db, CONSOLE, AuditFilter(actor="bob")) == []
        assert list_events(db, ivy, AuditFilter(session_id=1))[0].actor == "alice"
        later = core.now() + dt.timedelta(days=1)
        assert list_events(db, ivy, AuditFilter(since=later)) == []
        assert len(list_events(db, ivy, AuditFilter(until=later, limit=1))) == 1
        with pytest.raises(ValidationError, match="before"):
            list_events(db, ivy, AuditFilter(since=later, until=core.now()))
        with pytest.raises(ValidationError):
            list_events(db, ivy, AuditFilter(limit=0))
        for user in (world.alice, world.carol):
            with pytest.raises(PolicyDenied, match="auditor"):
                list_events(db, fresh(db, user), AuditFilter())
            with pytest.raises(PolicyDenied):
                check_chain(core, db, fresh(db, user))
        assert check_chain(core, db, fresh(db, world.erin)) == (1, [])
    with core.unit() as db:
        db.execute(update(AuditEvent).values(action="session.edited"))
    with core.reader() as db:
        checked, problems = check_chain(core, db, CONSOLE)
        assert checked == 1 and "content edited" in str(problems[0])
