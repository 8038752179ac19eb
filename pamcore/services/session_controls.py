"""What a person can do with a session right now, and how to connect to it: the rules
behind the buttons of the dashboard's session rows, kept here so every edge offers the same
ones. (Pre- and post-session *actions* are :mod:`pamcore.services.actions`.)"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.errors import NotFound
from pamcore.lifecycle import CONNECTABLE, OPEN, Status
from pamcore.model import ActivitySession, User
from pamcore.registry import LaunchInfo
from pamcore.services.access import own_connectable_session
from pamcore.services.common import is_admin
from pamcore.services.sessions import list_sessions

#: States that can still be canceled (before the session starts, or while it runs).
CANCELABLE = OPEN - {Status.ENDING, Status.PROVISIONING}


@dataclass(frozen=True)
class SessionControls:
    """The buttons of one session row for one viewer."""

    connect: bool = False
    view_password: bool = False
    copy_password: bool = False
    extend: bool = False
    #: When extended now: the new end, and how many extensions remain after it.
    extend_to: dt.datetime | None = None
    extensions_left_after: int = 0
    cancel: bool = False
    end: bool = False


def session_controls(
    core: Pamcore, session: ActivitySession, viewer: User, now: dt.datetime
) -> SessionControls:
    """The controls that apply to ``session`` for ``viewer`` at ``now`` (the services still
    decide when one is used; this only keeps buttons that would be refused off the page)."""
    status = Status(session.status)
    manager = viewer.id == session.requester_id or is_admin(viewer)
    connectable = status in CONNECTABLE and (session.ends_at is None or session.ends_at > now)
    mine = viewer.id == session.requester_id and connectable
    profile = session.profile
    extend = (
        manager
        and connectable
        and session.ends_at is not None
        and profile.extension_enabled
        and session.extensions_used < profile.extension_max_count
        and session.ends_at - now <= dt.timedelta(minutes=profile.warning_minutes)
    )
    return SessionControls(
        connect=mine,
        view_password=mine and core.hooks.password_display(session, viewer, "view").allow,
        copy_password=mine and core.hooks.password_display(session, viewer, "copy").allow,
        extend=extend,
        extend_to=(
            session.ends_at + dt.timedelta(minutes=profile.extension_minutes)
            if extend and session.ends_at
            else None
        ),
        extensions_left_after=max(session.extensions_left - 1, 0),
        cancel=manager and status in CANCELABLE and status not in CONNECTABLE,
        end=manager and status in CONNECTABLE,
    )


@dataclass(frozen=True)
class Launch:
    """How to connect to one resource of a session over one protocol."""

    resource: str
    protocol: str
    info: LaunchInfo


def connection_launches(core: Pamcore, db: Session, viewer: User, session_id: int) -> list[Launch]:
    """The requester's ways in (native command, URI, file) for each resource and protocol
    of a connectable session, from the protocol plugins."""
    session = own_connectable_session(core, db, viewer, session_id)
    handlers = core.hooks.protocols()
    launches = []
    for resource in session.resources:
        for protocol in resource.protocols:
            handler = handlers.get(protocol.name)
            if handler is None or handler.client_launch is None:
                continue
            info = handler.client_launch(
                session, resource, viewer, core.config.public_host, handler.port(core.config)
            )
            launches.append(Launch(resource.name, protocol.name, info))
    return launches


def launch_file(
    core: Pamcore, db: Session, viewer: User, session_id: int, resource: str, protocol: str
) -> tuple[str, str, bytes]:
    """The downloadable file (e.g. ``.rdp``) a protocol plugin gives for one resource."""
    for launch in connection_launches(core, db, viewer, session_id):
        if (
            launch.resource == resource
            and launch.protocol == protocol
            and launch.info.file is not None
        ):
            return launch.info.file
    raise NotFound(f"no {protocol} file for {resource} in session #{session_id}")


def list_with_controls(
    core: Pamcore, db: Session, viewer: User, view: str
) -> list[tuple[ActivitySession, SessionControls]]:
    """A dashboard table: the sessions ``viewer`` may see in ``view``, each with its controls."""
    now = core.now()
    return [(s, session_controls(core, s, viewer, now)) for s in list_sessions(db, viewer, view)]


__all__ = [
    "CANCELABLE",
    "Launch",
    "SessionControls",
    "connection_launches",
    "launch_file",
    "list_with_controls",
    "session_controls",
]
