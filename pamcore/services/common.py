"""What every service shares: who is acting, name look-ups, role checks."""

from __future__ import annotations

import os
import re
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pamcore.errors import NotFound, PolicyDenied, ValidationError
from pamcore.model import (
    AccessPolicy,
    Activity,
    ActivityAction,
    ActivitySession,
    ApprovalTier,
    ConnectionProfile,
    Credential,
    Group,
    Resource,
    Role,
    User,
)

_WORKER: tuple[int, str] | None = None


def worker_name() -> str:
    """This process, as it appears in claims and connections: ``host:pid:random``, so a later
    process given the same pid (after a reboot, in another container) is never taken for it;
    a forked child is a new one."""
    global _WORKER
    if _WORKER is None or _WORKER[0] != os.getpid():
        _WORKER = (os.getpid(), f"{this_host()}:{os.getpid()}:{secrets.token_hex(4)}")
    return _WORKER[1]


def this_host() -> str:
    """The host part of :func:`worker_name` (bounded: a claim names it in 128 characters)."""
    return socket.gethostname()[:96]


@dataclass(frozen=True)
class SystemActor:
    """The operator at the instance's console (CLI without ``--as``), or the scheduler."""

    name: str = "system"

    @property
    def username(self) -> str:
        return f"system:{self.name}"


Actor = User | SystemActor
SCHEDULER = SystemActor("scheduler")
CONSOLE = SystemActor("cli")


def actor_name(actor: Actor) -> str:
    return actor.username


def is_admin(actor: Actor) -> bool:
    return isinstance(actor, SystemActor) or actor.role == Role.ADMIN


def require_admin(actor: Actor, what: str) -> None:
    if not is_admin(actor):
        raise PolicyDenied(f"only an administrator may {what}")


def require_auditor(actor: Actor) -> None:
    if not (is_admin(actor) or (isinstance(actor, User) and actor.role == Role.AUDITOR)):
        raise PolicyDenied("only an administrator or an auditor may read the audit log")


M = TypeVar("M", User, Group, Resource, Credential, Activity, ConnectionProfile, AccessPolicy)

_NAME_COLUMN = {User: "username"}
_KIND = {
    User: "user",
    Group: "group",
    Resource: "resource",
    Credential: "credential",
    Activity: "activity",
    ConnectionProfile: "connection profile",
    AccessPolicy: "access policy",
}


def normalize_name(name: str) -> str:
    """Names match case-insensitively, and ``-``/``_`` stand for a space (DirectConnect)."""
    return re.sub(r"[\s_\-]+", " ", name.strip()).casefold()


def check_text(field: str, value: str, max_len: int) -> str:
    """Free text (notes, comments, descriptions), trimmed and bounded. NUL is refused: no
    person types it, and PostgreSQL cannot store it (found by the API's schemathesis run)."""
    value = value.strip()
    if "\x00" in value:
        raise ValidationError(field, "must not contain NUL characters")
    if len(value) > max_len:
        raise ValidationError(field, f"at most {max_len} characters")
    return value


def by_name(db: Session, model: type[M], name: str) -> M:
    """Look a named object up: exact (case-insensitive) first, then with ``-``/``_`` as spaces."""
    column = getattr(model, _NAME_COLUMN.get(model, "name"))
    if "\x00" in name:  # no name holds one, and PostgreSQL refuses it in a query
        raise NotFound(f"no {_KIND[model]} named {name.replace(chr(0), '')!r}")
    found = db.scalar(select(model).where(func.lower(column) == name.strip().lower()))
    if found is not None:
        return found
    wanted = normalize_name(name)
    matches = [
        m for m in db.scalars(select(model)) if normalize_name(getattr(m, column.key)) == wanted
    ]
    if len(matches) == 1:
        return matches[0]
    kind = _KIND[model]
    if matches:
        raise NotFound(f"'{name}' matches several {kind} names; type the exact name")
    raise NotFound(f"no {kind} named '{name}'")


#: The largest id a row can have: ids are INTEGER columns, 32-bit in PostgreSQL. A larger
#: one names no row, and must not reach the database (PostgreSQL refuses it as out of range;
#: past 2^63 SQLite's driver raises OverflowError).
MAX_ID = 2**31 - 1


def get_session(db: Session, session_id: int) -> ActivitySession:
    if not 0 < session_id <= MAX_ID:
        raise NotFound(f"no activity session #{session_id}")
    session = db.get(ActivitySession, session_id)
    if session is None:
        raise NotFound(f"no activity session #{session_id}")
    return session


def sessions_using(db: Session, column: Any, value: int) -> int:
    """How many activity sessions have ``column == value`` (e.g. ran an activity or under a
    profile); such rows stay for the history and must not be deleted."""
    return db.scalar(select(func.count()).select_from(ActivitySession).where(column == value)) or 0


def renumber(db: Session, rows: Sequence[ActivityAction | ApprovalTier]) -> None:
    """Give rows positions 1..n without tripping the (parent, position) unique constraint:
    first out of the way (negative), then into place."""
    for i, row in enumerate(rows, start=1):
        row.position = -i
    db.flush()
    for i, row in enumerate(rows, start=1):
        row.position = i
    db.flush()
