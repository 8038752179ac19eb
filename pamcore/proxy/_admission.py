"""Admission, the connection's life and its close: the one shape every proxy's admitted
connection has (:class:`Admitted`), detached from the database, with the protocol's own
part computed inside the admission's unit of work (``extra=``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.model import ActivitySession, Resource
from pamcore.services import inventory
from pamcore.services.connections import admit_connection, close_connection, session_ends
from pamcore.services.recording_budgets import SessionBudget
from pamcore.services.sessions import Extension, extend_from_connection
from pamcore.vault import Revealed

log = logging.getLogger(__name__)

E = TypeVar("E")

#: What a user is told when admitting a connection failed on our side (the database, a
#: bug): never the user's fault, so never a traceback; the proxy logs one for the operator.
UNEXPECTED = (
    "pamcore could not open this connection because of an internal error (the operator "
    "can find it in the proxy's log); connect again in a moment"
)


@dataclass(frozen=True)
class Admitted(Generic[E]):
    """A connection the core authorised and counts as live; detached (no ORM rows), so it
    can travel from the worker thread to the event loop."""

    protocol: str
    connection_id: int
    session_id: int
    user_id: int
    username: str
    resource_id: int
    resource_name: str
    address: str
    port: int
    ends_at: dt.datetime
    #: The profile's warning window: banners and Ctrl+X (off when zero).
    warning: dt.timedelta
    #: Whether the profile allows extensions: Ctrl+X is offered and taken only then.
    extendable: bool
    login_account: str
    password: Revealed | None = field(repr=False)
    private_key: Revealed | None = field(repr=False)
    #: The connection's share of its session's recording cap; None: the profile does not
    #: record.
    budget: SessionBudget | None = field(repr=False, compare=False)
    #: What the protocol computed inside the admission's unit (``extra=``); None without.
    extra: E = field(repr=False)


def admit(
    core: Pamcore,
    protocol: str,
    user_id: int,
    resource: str,
    *,
    peer: str = "",
    activity: str | None = None,
    session_id: int | None = None,
    recording_cap: int = 0,
    extra: Callable[[Pamcore, Session, ActivitySession, Resource], E] | None = None,
) -> Admitted[E]:
    """Authorise the signed-in user's connection (audited) and count it as live; raises
    PamError with the sentence for the user. ``session_id`` pins the session (a token or
    redirection names one); ``recording_cap`` is the session's cap in bytes when its
    profile records."""
    with core.unit() as db:
        admission = admit_connection(
            core, db, user_id, resource, protocol, peer, activity, session_id
        )
        grant, target = admission.grant, admission.resource
        session = grant.session
        profile = session.profile
        return Admitted(
            protocol=protocol,
            connection_id=admission.live.id,
            session_id=session.id,
            user_id=admission.user.id,
            username=admission.user.username,
            resource_id=target.id,
            resource_name=target.name,
            address=target.address,
            port=grant.port,
            ends_at=grant.ends_at,
            warning=dt.timedelta(minutes=profile.warning_minutes),
            extendable=profile.allows_extension,
            login_account=grant.login_account,
            password=grant.password,
            private_key=grant.private_key,
            budget=SessionBudget(core, session.id, recording_cap) if profile.recording else None,
            extra=extra(core, db, session, target) if extra is not None else None,  # type: ignore[arg-type]
        )


async def close(core: Pamcore, admitted: Admitted[Any], reason: str) -> None:
    """Count the connection closed (audited ``connection.closed`` once, however often
    called). Shielded, so a listener's stop cannot skip the bookkeeping; a failure is
    logged, not raised, as the connection is gone either way."""
    try:
        await asyncio.shield(
            asyncio.to_thread(close_connection, core, admitted.connection_id, reason)
        )
    except Exception:
        log.exception(
            "recording the close of %s connection #%s failed",
            admitted.protocol,
            admitted.connection_id,
        )


def session_end(core: Pamcore, session_id: int) -> dt.datetime | None:
    """The session's end time; ``None`` when it can no longer be connected to."""
    with core.reader() as db:
        return session_ends(db, [session_id])[session_id]


def extend(core: Pamcore, session_id: int) -> Extension:
    """Ctrl+X inside a connection, as the session's requester; raises PamError with the
    sentence (window, count, profile: the extend service decides)."""
    return extend_from_connection(core, session_id)


def audit(core: Pamcore, actor: str, action: str, **details: Any) -> None:
    """One audit event in its own unit (``target=``, ``session_id=`` as in the core)."""
    with core.unit() as db:
        core.audit(db, actor, action, **details)


def pin_host_key(core: Pamcore, resource_id: int, line: str, by: str) -> None:
    """Keep a target's first host key (trust on first use), in its own unit."""
    with core.unit() as db:
        inventory.pin_host_key(core, db, resource_id, line, by)
