"""Single use across every node: a token or ticket is spent by exactly one statement that
changes one row, so of any number of proxies (or threads) redeeming it at once exactly one
wins, and it stays spent after a restart (docs/design/single-use.md).

Two shapes of secret share the table. A *signed* token carries its own payload and expiry
(the dashboard's terminal and ``.rdp`` tokens): redeeming it inserts its row, spent, and
the insert that meets an existing row loses. A *held* ticket (RDP redirection) is stored
unspent with its payload when issued, and redeeming it sets ``spent_at`` where it is still
unset. Only a SHA-256 of the secret is stored, so the table lets no one in.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Insert, delete, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.model import SingleUse
from pamcore.services.common import worker_name

#: Rows stay this long after they expire, so a late client hears "expired" or "already
#: used" rather than "not known".
KEEP_AFTER_EXPIRY = dt.timedelta(minutes=10)
#: Rows one purge deletes at most, so a backlog never makes one long transaction. Every
#: spend and hold purges once: the table stays as small as the last few minutes' tokens.
PURGE_BATCH = 100

TABLE = SingleUse.__table__


def digest(secret: str) -> str:
    """What is stored instead of the secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _insert(db: Session) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` in the database's own dialect (both have it);
    ``RETURNING`` tells whether it inserted (psycopg reports no row count for it)."""
    dialect = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(TABLE).on_conflict_do_nothing()  # type: ignore[no-any-return]


def spend(core: Pamcore, kind: str, secret: str, expires_at: dt.datetime) -> bool:
    """Spend a signed token (checked by the caller): ``True`` for the one caller, on any
    node, whose insert made the row; ``False`` when it was spent before."""
    with core.unit() as db:
        _purge(core, db, PURGE_BATCH)
        inserted = db.execute(
            _insert(db)
            .values(
                kind=kind,
                digest=digest(secret),
                expires_at=expires_at,
                spent_at=core.now(),
                spent_by=worker_name(),
            )
            .returning(TABLE.c.digest)
        )
        return inserted.first() is not None


def hold(
    core: Pamcore, kind: str, secret: str, expires_at: dt.datetime, payload: dict[str, Any]
) -> None:
    """Keep an issued ticket, unspent, with what it grants, for :func:`redeem` on any node."""
    with core.unit() as db:
        _purge(core, db, PURGE_BATCH)
        db.execute(
            TABLE.insert().values(
                kind=kind, digest=digest(secret), expires_at=expires_at, payload=payload
            )
        )


class Outcome(enum.Enum):
    WON = "won"
    SPENT_BEFORE = "spent before"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Redemption:
    """What redeeming a held ticket found; ``expires_at`` and ``payload`` only when ``WON``
    (the caller checks the expiry: an expired ticket is burnt all the same)."""

    outcome: Outcome
    expires_at: dt.datetime | None = None
    payload: dict[str, Any] = field(default_factory=dict)


def redeem(core: Pamcore, kind: str, secret: str) -> Redemption:
    """Spend a held ticket with ``UPDATE ... WHERE spent_at IS NULL``: the one caller whose
    update changed the row won it."""
    key = digest(secret)
    where = (TABLE.c.kind == kind, TABLE.c.digest == key)
    with core.unit() as db:
        won = db.execute(
            update(TABLE)
            .where(*where, TABLE.c.spent_at.is_(None))
            .values(spent_at=core.now(), spent_by=worker_name())
        )
        row = db.execute(select(TABLE.c.expires_at, TABLE.c.payload).where(*where)).one_or_none()
    if row is None:
        return Redemption(Outcome.UNKNOWN)
    if won.rowcount != 1:
        return Redemption(Outcome.SPENT_BEFORE)
    return Redemption(Outcome.WON, row.expires_at, dict(row.payload or {}))


def _purge(core: Pamcore, db: Session, batch: int) -> None:
    """Delete up to ``batch`` rows expired for longer than :data:`KEEP_AFTER_EXPIRY`.
    Nodes purging at once skip each other's rows (PostgreSQL), so they never wait on or
    deadlock with one another."""
    old = (
        select(TABLE.c.kind, TABLE.c.digest)
        .where(TABLE.c.expires_at < core.now() - KEEP_AFTER_EXPIRY)
        .limit(batch)
    )
    if db.get_bind().dialect.name == "postgresql":
        old = old.with_for_update(skip_locked=True)
    db.execute(delete(TABLE).where(tuple_(TABLE.c.kind, TABLE.c.digest).in_(old)))
