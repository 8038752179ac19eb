"""Connections through the proxies, on any node: the first open one makes a session
``active``, the last one to close makes it ``available`` again. Admins can list the open
ones and ask for one to be terminated; the watch of the node holding it reads that. Each
node's watch refreshes its connections' heartbeat; those of a node silent for longer than
``heartbeat_timeout`` are closed by another node's watch.

Each connection is one row, kept once closed, with an id never reused: it has exactly one
``connection.opened`` and one ``connection.closed`` event, whoever closes it first (its
proxy, or the session's ending when the proxy has not yet noticed) writing the second."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.errors import NotFound, PolicyDenied
from pamcore.lifecycle import CONNECTABLE, Status, transition
from pamcore.model import Activity, ActivitySession, AuditEvent, LiveConnection, Resource, User
from pamcore.services.access import ConnectionGrant, authorize_connection
from pamcore.services.common import Actor, by_name, require_admin
from pamcore.session_changes import TERMINATED

#: Audited when a proxy connection negotiated an algorithm that only a plugin enabled for the
#: resource (legacy SSH algorithms): the event holds what was negotiated, and the dashboard
#: badges the session from it.
LEGACY_ALGORITHMS = "connection.legacy_algorithms"


def legacy_algorithms(db: Session, session_ids: list[int]) -> dict[int, dict[str, str]]:
    """Session id -> what its latest legacy connection negotiated (``kex``, ``cipher``,
    ``mac``, ``host_key``, ``legacy``: the names a plugin enabled) and its ``resource``."""
    if not session_ids:
        return {}
    events = db.scalars(
        select(AuditEvent)
        .where(AuditEvent.action == LEGACY_ALGORITHMS, AuditEvent.session_id.in_(session_ids))
        .order_by(AuditEvent.id)
    )
    return {
        e.session_id: {**e.details, "resource": e.target}
        for e in events
        if e.session_id is not None
    }


def _locked(db: Session, session_id: int) -> ActivitySession:
    """The session row, locked and read afresh. The unit may have loaded it before (to
    authorize) and another connection may have changed it since: a locking read of a row
    whose version moved on raises a stale-data error in SQLAlchemy, so a loaded row is
    refreshed under the lock instead (the unit's own changes are flushed first)."""
    db.flush()
    session = db.get(ActivitySession, session_id)
    if session is None:
        raise NotFound(f"no activity session #{session_id}")
    db.refresh(session, with_for_update=True)
    return session


def connection_opened(
    core: Pamcore,
    db: Session,
    user: User,
    session_id: int,
    resource: Resource,
    protocol: str,
    peer: str = "",
) -> LiveConnection:
    """Record a connection a proxy let through (after ``authorize_connection``); the proxy
    keeps the returned row's id to close it."""
    session = _locked(db, session_id)
    if Status(session.status) not in CONNECTABLE:
        raise PolicyDenied(f"session #{session.id} is {Status(session.status).label}")
    connection = LiveConnection(
        session_id=session.id,
        user_id=user.id,
        resource_id=resource.id,
        protocol=protocol,
        node=core.node,
        peer=peer,
    )
    db.add(connection)
    if Status(session.status) == Status.AVAILABLE:
        transition(session, Status.ACTIVE)
    db.flush()
    core.audit(
        db,
        user.username,
        "connection.opened",
        target=resource.name,
        session_id=session.id,
        protocol=protocol,
        connection=connection.id,
        peer=peer,
    )
    return connection


@dataclass(frozen=True)
class _Admission:
    """An authorised connection counted as live, as the unit holds it (ORM rows): the proxy
    kit copies what a listener needs into its detached ``pamcore.proxy.Admitted``."""

    grant: ConnectionGrant
    live: LiveConnection
    user: User
    resource: Resource


def admit_connection(
    core: Pamcore,
    db: Session,
    user_id: int,
    resource: str,
    protocol: str,
    peer: str = "",
    activity: str | None = None,
    session_id: int | None = None,
) -> _Admission:
    """Authorise a signed-in user's connection to ``resource`` (audited) and count it as
    live; raises PamError. ``session_id`` pins the session (a token or ticket names one)."""
    user = db.get(User, user_id)
    if user is None:
        raise NotFound(f"no user #{user_id}")
    target = by_name(db, Resource, resource)
    wanted = by_name(db, Activity, activity) if activity else None
    grant = authorize_connection(core, db, user, target, protocol, wanted, session_id)
    live = connection_opened(core, db, user, grant.session.id, target, protocol, peer)
    return _Admission(grant, live, user, target)


def connection_closed(
    core: Pamcore, db: Session, connection_id: int, reason: str = "closed"
) -> None:
    """Record a connection closed; the session returns to ``available`` when no open one
    is left. Safe to call twice, or after the session's ending closed it."""
    connection = db.get(LiveConnection, connection_id)
    if connection is None:
        return
    session = _locked(db, connection.session_id)
    if not _mark_closed(core, db, connection, reason):
        return
    if Status(session.status) == Status.ACTIVE and not open_count(db, session.id):
        transition(session, Status.AVAILABLE)


def close_session_connections(
    core: Pamcore, db: Session, session: ActivitySession, reason: str
) -> None:
    """Record closed the connections of an ending session that their proxies have not
    closed yet (they were told to, and a proxy that died never will)."""
    for connection in session.connections:
        if connection.closed_at is None:
            _mark_closed(core, db, connection, reason)


def _mark_closed(core: Pamcore, db: Session, connection: LiveConnection, reason: str) -> bool:
    """Close ``connection`` and audit it, unless someone else already did: the conditional
    update lets exactly one of two racing closers through."""
    closed = db.execute(
        update(LiveConnection)
        .where(LiveConnection.id == connection.id, LiveConnection.closed_at.is_(None))
        .values(closed_at=core.now(), close_reason=reason[:256])
        .execution_options(synchronize_session="fetch")
    )
    if closed.rowcount != 1:  # type: ignore[attr-defined]
        return False
    user = db.get(User, connection.user_id)
    core.audit(
        db,
        user.username if user else "-",
        "connection.closed",
        session_id=connection.session_id,
        protocol=connection.protocol,
        connection=connection.id,
        reason=reason,
    )
    return True


def open_count(db: Session, session_id: int) -> int:
    """How many connections of the session are open now."""
    return (
        db.scalar(
            select(func.count())
            .select_from(LiveConnection)
            .where(LiveConnection.session_id == session_id, LiveConnection.closed_at.is_(None))
        )
        or 0
    )


def close_connection(core: Pamcore, connection_id: int, reason: str) -> None:
    """:func:`connection_closed` in its own unit of work, as a proxy runs it (in a worker
    thread) when a connection ends."""
    with core.unit() as db:
        connection_closed(core, db, connection_id, reason)


def list_connections(db: Session, actor: Actor) -> list[LiveConnection]:
    """The open connections, oldest first."""
    require_admin(actor, "list live connections")
    return list(
        db.scalars(
            select(LiveConnection)
            .where(LiveConnection.closed_at.is_(None))
            .order_by(LiveConnection.opened_at, LiveConnection.id)
        )
    )


def request_termination(
    core: Pamcore, db: Session, actor: Actor, connection_id: int, reason: str = ""
) -> LiveConnection:
    """Ask the node holding a connection to close it: its watch reads :func:`to_close`,
    at once when told by the session change, else at its next poll."""
    require_admin(actor, "terminate connections")
    connection = db.get(LiveConnection, connection_id)
    if connection is None or connection.closed_at is not None:
        raise NotFound(f"no live connection #{connection_id}")
    connection.terminate_requested = True
    connection.terminate_reason = reason or f"terminated by {actor.username}"
    core.audit(
        db,
        actor.username,
        "connection.terminate_requested",
        session_id=connection.session_id,
        connection=connection_id,
        reason=reason,
    )
    core.session_changes.announce(db, connection.session_id, TERMINATED, connection_id)
    return connection


def to_close(db: Session, connection_ids: list[int]) -> dict[int, str]:
    """Connection id -> reason, among ``connection_ids`` (held by a proxy), of those an
    administrator asked to terminate or that were closed without their proxy (their node
    was taken for dead, or their session's ending closed them)."""
    if not connection_ids:
        return {}
    rows = db.execute(
        select(
            LiveConnection.id,
            LiveConnection.closed_at,
            LiveConnection.close_reason,
            LiveConnection.terminate_reason,
        ).where(
            LiveConnection.id.in_(connection_ids),
            LiveConnection.terminate_requested.is_(True) | LiveConnection.closed_at.is_not(None),
        )
    )
    return {
        row.id: row.close_reason if row.closed_at is not None else row.terminate_reason
        for row in rows
    }


def session_ends(db: Session, session_ids: list[int]) -> dict[int, dt.datetime | None]:
    """End time of each session a proxy holds connections for; ``None`` when the session
    can no longer be connected to (ending, ended, canceled), so the proxy closes now."""
    if not session_ids:
        return {}
    rows = db.execute(
        select(ActivitySession.id, ActivitySession.status, ActivitySession.ends_at).where(
            ActivitySession.id.in_(session_ids)
        )
    )
    ends: dict[int, dt.datetime | None] = dict.fromkeys(session_ids)
    for row in rows:
        if Status(row.status) in CONNECTABLE:
            ends[row.id] = row.ends_at
    return ends


def live_state(
    db: Session, session_ids: list[int], connection_ids: list[int]
) -> tuple[dict[int, dt.datetime | None], dict[int, str]]:
    """What a proxy's watch applies to the connections it holds: :func:`session_ends` of
    their sessions, and :func:`to_close` of the connections."""
    return session_ends(db, session_ids), to_close(db, connection_ids)


def heartbeat(core: Pamcore, db: Session) -> None:
    """This node still holds its open connections: one UPDATE for all of them (those being
    admitted too, not yet handed to a listener's watch)."""
    db.execute(
        update(LiveConnection)
        .where(LiveConnection.node == core.node, LiveConnection.closed_at.is_(None))
        .values(heartbeat_at=core.now())
        .execution_options(synchronize_session=False)
    )


def silent_connections(db: Session, node: str, cutoff: dt.datetime) -> list[tuple[int, str]]:
    """(connection id, node) of the open connections of other nodes than ``node`` last
    heard from before ``cutoff``."""
    rows = db.execute(
        select(LiveConnection.id, LiveConnection.node).where(
            LiveConnection.closed_at.is_(None),
            LiveConnection.heartbeat_at < cutoff,
            LiveConnection.node != node,
        )
    )
    return [(row.id, row.node) for row in rows]


def close_silent_nodes(core: Pamcore) -> int:
    """Close the connections of nodes silent for longer than ``heartbeat_timeout``, each
    audited once as ``connection.closed`` (several nodes' watches may race; one wins).
    Read first, so a quiet database costs no write; returns how many were found."""
    cutoff = core.now() - dt.timedelta(seconds=core.config.heartbeat_timeout)
    with core.reader() as db:
        silent = silent_connections(db, core.node, cutoff)
    if silent:
        with core.unit() as db:
            for connection_id, node in silent:
                connection_closed(core, db, connection_id, f"node {node} stopped answering")
    return len(silent)


def connectable_choices(
    db: Session, user: User, protocol: str
) -> list[tuple[ActivitySession, Resource]]:
    """The user's Available or Active sessions × their resources reachable over
    ``protocol``: what a login without a resource (``user`` alone) may pick from."""
    sessions = db.scalars(
        select(ActivitySession)
        .where(
            ActivitySession.requester_id == user.id,
            ActivitySession.status.in_([s.value for s in CONNECTABLE]),
        )
        .order_by(ActivitySession.id)
    )
    return [
        (session, resource)
        for session in sessions
        for resource in session.resources
        if resource.port_for(protocol) is not None
    ]
