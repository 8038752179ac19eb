"""The append-only, hash-chained audit log (see :mod:`pamcore.audit` for the chain rules)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from pamcore.model.base import Base, stamped_column


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = stamped_column(index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(128), default="")
    session_id: Mapped[int | None] = mapped_column(index=True, default=None)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    #: HMAC-SHA256 of the event under the audit key ``key_id``; plain SHA-256 for events
    #: written before the instance had an audit key (``key_id`` NULL).
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_id: Mapped[str | None] = mapped_column(String(32), default=None)


class AuditHead(Base):
    """One row holding the chain's tip; appends lock it, so two writers never fork the chain,
    and a deleted tail is detected by comparing it with the last event."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_id: Mapped[int] = mapped_column(default=0)
    last_hash: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(default=0)
