"""Live connections through the proxies: the first one makes a session ``active``, the last
one to close makes it ``available`` again. Proxies on any node call these, so the count is
kept in the database under a row lock."""

from __future__ import annotations

from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.errors import NotFound, PolicyDenied
from pamcore.lifecycle import CONNECTABLE, Status, transition
from pamcore.model import ActivitySession, User


def _locked(db: Session, session_id: int) -> ActivitySession:
    session = db.get(ActivitySession, session_id, with_for_update=True)
    if session is None:
        raise NotFound(f"no activity session #{session_id}")
    return session


def connection_opened(
    core: Pamcore, db: Session, user: User, session_id: int, resource: str, protocol: str
) -> ActivitySession:
    """Count a connection that a proxy let through (after :func:`authorize_connection`)."""
    session = _locked(db, session_id)
    if Status(session.status) not in CONNECTABLE:
        raise PolicyDenied(f"session #{session.id} is {Status(session.status).label}")
    session.live_connections += 1
    if Status(session.status) == Status.AVAILABLE:
        transition(session, Status.ACTIVE)
    core.audit(
        db,
        user.username,
        "connection.opened",
        target=resource,
        session_id=session.id,
        protocol=protocol,
        live=session.live_connections,
    )
    return session


def connection_closed(
    core: Pamcore,
    db: Session,
    user: User,
    session_id: int,
    resource: str,
    protocol: str,
    reason: str = "closed",
) -> ActivitySession:
    """Count a connection down; the session returns to ``available`` when none is left.

    Safe to call after the session ended (the proxy closing what the end cut off).
    """
    session = _locked(db, session_id)
    session.live_connections = max(session.live_connections - 1, 0)
    if Status(session.status) == Status.ACTIVE and session.live_connections == 0:
        transition(session, Status.AVAILABLE)
    core.audit(
        db,
        user.username,
        "connection.closed",
        target=resource,
        session_id=session.id,
        protocol=protocol,
        live=session.live_connections,
        reason=reason,
    )
    return session
