"""Activity sessions, their approvals and recordings."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pamcore.lifecycle import Status
from pamcore.model.base import Base, stamped_column
from pamcore.model.directory import User, enum_column
from pamcore.model.inventory import Credential, Resource, Secret
from pamcore.model.policy import AccessPolicy, Activity, ConnectionProfile

session_resources = Table(
    "session_resources",
    Base.metadata,
    Column("session_id", ForeignKey("activity_sessions.id", ondelete="CASCADE"), primary_key=True),
    Column("resource_id", ForeignKey("resources.id", ondelete="RESTRICT"), primary_key=True),
)


class ActivitySession(Base):
    __tablename__ = "activity_sessions"
    __table_args__ = (
        Index("ix_activity_sessions_status_start", "status", "scheduled_start"),
        Index("ix_activity_sessions_status_end", "status", "ends_at"),
        Index("ix_activity_sessions_requester_status", "requester_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    requester_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id"))
    policy_id: Mapped[int | None] = mapped_column(
        ForeignKey("access_policies.id", ondelete="SET NULL")
    )
    #: The profile in force when the session was requested; rules are read from it throughout.
    profile_id: Mapped[int] = mapped_column(ForeignKey("connection_profiles.id"))
    status: Mapped[Status] = mapped_column(
        enum_column(Status, "session_status"), default=Status.REQUESTED
    )
    notes: Mapped[str] = mapped_column(Text, default="")
    ticket: Mapped[str] = mapped_column(String(64), default="")
    scheduled_start: Mapped[dt.datetime]
    #: Set when the session becomes available: start + the profile's maximum duration.
    started_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    ends_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    finished_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    extensions_used: Mapped[int] = mapped_column(default=0)
    #: Current approval tier (1-based) while waiting for approval, and when it started.
    current_tier: Mapped[int] = mapped_column(default=0)
    tier_started_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    #: Tier whose escalation has been announced (audit + hook), so it happens once.
    escalated_tier: Mapped[int] = mapped_column(default=0)
    login_account: Mapped[str] = mapped_column(String(128), default="")
    login_credential_id: Mapped[int | None] = mapped_column(
        ForeignKey("credentials.id", ondelete="SET NULL"), default=None
    )
    #: Password of an ephemeral account, generated at provisioning.
    login_secret_id: Mapped[int | None] = mapped_column(
        ForeignKey("secrets.id", ondelete="SET NULL"), default=None
    )
    #: Why the session ended the way it did ("canceled by alice", "pre-session action failed").
    outcome_reason: Mapped[str] = mapped_column(String(512), default="")
    #: The status ``ending`` settles on once post-session actions ran.
    pending_outcome: Mapped[Status | None] = mapped_column(
        enum_column(Status, "pending_outcome"), default=None
    )
    #: Which process (its node id) runs this session's actions, and when it last said it
    #: still does; a claim whose heartbeat stopped is taken over (pamcore.services.claims).
    claimed_by: Mapped[str | None] = mapped_column(String(128), default=None)
    claim_heartbeat_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = stamped_column()
    version: Mapped[int] = mapped_column(default=1)

    # Optimistic locking: two workers or two approvers racing on one session cannot both win.
    __mapper_args__ = {"version_id_col": version}

    requester: Mapped[User] = relationship(foreign_keys=[requester_id])
    activity: Mapped[Activity] = relationship()
    policy: Mapped[AccessPolicy | None] = relationship()
    profile: Mapped[ConnectionProfile] = relationship()
    resources: Mapped[list[Resource]] = relationship(
        secondary=session_resources, order_by="Resource.name"
    )
    login_credential: Mapped[Credential | None] = relationship()
    login_secret: Mapped[Secret | None] = relationship()
    approvals: Mapped[list[Approval]] = relationship(
        back_populates="session", cascade="all, delete-orphan", order_by="Approval.id"
    )
    #: Every connection the session had, open and closed.
    connections: Mapped[list[LiveConnection]] = relationship(
        cascade="all, delete-orphan", order_by="LiveConnection.id"
    )

    def remaining(self, now: dt.datetime) -> dt.timedelta | None:
        if self.ends_at is None:
            return None
        return max(self.ends_at - now, dt.timedelta(0))

    @property
    def extensions_left(self) -> int:
        return max(self.profile.extension_max_count - self.extensions_used, 0)


class Decision(enum.StrEnum):
    APPROVED = "approved"
    DENIED = "denied"


class Approval(Base):
    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("activity_sessions.id", ondelete="CASCADE"), index=True
    )
    tier: Mapped[int]
    approver_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    decision: Mapped[Decision] = mapped_column(enum_column(Decision, "decision"))
    comment: Mapped[str] = mapped_column(Text, default="")
    via_escalation: Mapped[bool] = mapped_column(default=False)
    decided_at: Mapped[dt.datetime] = stamped_column()

    session: Mapped[ActivitySession] = relationship(back_populates="approvals")
    approver: Mapped[User] = relationship()


class CompletedAction(Base):
    """One pre- or post-session action that finished on one resource of a session, written
    with the audit events it recorded: whoever takes a claim over resumes after it, so an
    action is never run twice."""

    __tablename__ = "completed_actions"
    __table_args__ = (UniqueConstraint("session_id", "resource_id", "action_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("activity_sessions.id", ondelete="CASCADE"))
    #: Plain ids, not foreign keys: the record outlives an edit of the activity's steps.
    resource_id: Mapped[int]
    action_id: Mapped[int]
    finished_at: Mapped[dt.datetime] = stamped_column()


class Recording(Base):
    """Metadata of a session recording written by a protocol plugin; the file lives on disk."""

    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("activity_sessions.id", ondelete="CASCADE"), index=True
    )
    resource_id: Mapped[int | None] = mapped_column(
        ForeignKey("resources.id", ondelete="SET NULL"), default=None
    )
    protocol: Mapped[str] = mapped_column(String(32))
    format: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    size_bytes: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[dt.datetime] = stamped_column()
    ended_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class LiveConnection(Base):
    """A connection through a proxy, on any node. Open ones (``closed_at`` unset) are listed
    in the dashboard and an admin may ask for one to be terminated (the owning node's watch
    reads ``terminate_requested``). Rows are kept once closed and ids are never reused
    (AUTOINCREMENT on SQLite), so audit events and recordings name one connection for good."""

    __tablename__ = "live_connections"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("activity_sessions.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    resource_id: Mapped[int | None] = mapped_column(
        ForeignKey("resources.id", ondelete="SET NULL"), default=None
    )
    protocol: Mapped[str] = mapped_column(String(32))
    #: The proxy process holding it (:attr:`pamcore.core.Pamcore.node`), and the client's
    #: address.
    node: Mapped[str] = mapped_column(String(128), index=True)
    peer: Mapped[str] = mapped_column(String(128), default="")
    opened_at: Mapped[dt.datetime] = stamped_column()
    #: When its node last said it still holds it; a node silent for longer than
    #: ``heartbeat_timeout`` has its connections closed by another.
    heartbeat_at: Mapped[dt.datetime] = stamped_column()
    #: When and why it closed; set once, by whoever closed it first (its proxy, or the
    #: session's ending).
    closed_at: Mapped[dt.datetime | None] = mapped_column(default=None, index=True)
    close_reason: Mapped[str] = mapped_column(String(256), default="")
    terminate_requested: Mapped[bool] = mapped_column(default=False)
    terminate_reason: Mapped[str] = mapped_column(String(256), default="")
