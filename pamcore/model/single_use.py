"""State that every proxy, web and worker process of an instance must agree on: what was
spent once (tokens, tickets) and how many bytes a session's recordings may still take
(docs/design/single-use.md)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from pamcore.model.base import Base


class SingleUse(Base):
    """A token or ticket that may be used once, on any node: only its SHA-256 is kept."""

    __tablename__ = "single_use"

    #: What it is (a token use's salt, ``rdp-ticket``): one kind's secrets never meet another's.
    kind: Mapped[str] = mapped_column(String(64), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    #: Set once, by the one statement that won; the node (``host:pid``) that spent it.
    spent_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    spent_by: Mapped[str | None] = mapped_column(String(128), default=None)
    #: What a ticket grants, for one that is issued here and redeemed later (maybe elsewhere).
    #: The column keeps its first name, ``grant``, so no migration renames it.
    payload: Mapped[dict[str, Any] | None] = mapped_column(
        "grant", JSON, key="payload", default=None
    )


class RecordingBudget(Base):
    """Bytes reserved so far by the recordings of one session, on every node, against the
    plugin's ``recording_cap_mib``."""

    __tablename__ = "recording_budgets"

    session_id: Mapped[int] = mapped_column(
        ForeignKey("activity_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    reserved_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
