"""Sessions in a given state, made through the services (as any edge would)."""

from __future__ import annotations

from pamcore.core import Pamcore
from pamcore.model import User
from pamcore.services import scheduler
from pamcore.services.approvals import approve_session
from pamcore.services.sessions import SessionRequest, create_session
from tests.conftest import fresh


def request_session(
    core: Pamcore, user: User, activity: str, resource: str, ticket: str = ""
) -> int:
    with core.unit() as db:
        request = SessionRequest(activity, (resource,), notes="test", ticket=ticket)
        return create_session(core, db, fresh(db, user), request).id


def approve(core: Pamcore, approver: User, session_id: int) -> None:
    with core.unit() as db:
        approve_session(core, db, fresh(db, approver), session_id, "ok")


def available_checkout(core: Pamcore, user: User) -> int:
    """alice's (or bob's) 'Check out root' on db01: no approval, Available after a tick."""
    session_id = request_session(core, user, "Check out root", "db01")
    scheduler.tick(core)
    return session_id
