"""What may be done and under which rules: activities, connection profiles, access policies."""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, String, Table, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pamcore.model.base import Base
from pamcore.model.directory import Group, User, enum_column
from pamcore.model.inventory import Credential, Resource


class ActivityKind(enum.StrEnum):
    #: Work on a resource as a login account (ephemeral or managed).
    RESOURCE = "resource"
    #: Check out a named credential; the password is always viewable for these.
    CREDENTIAL = "credential"


class LoginMode(enum.StrEnum):
    #: A fresh account per session, named from ``login_template`` (``{user}-{random}``).
    EPHEMERAL = "ephemeral"
    #: The activity's named managed credential.
    MANAGED = "managed"


class ActionPhase(enum.StrEnum):
    PRE = "pre"
    POST = "post"


class Activity(Base):
    __tablename__ = "activities"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(String(512), default="")
    kind: Mapped[ActivityKind] = mapped_column(
        enum_column(ActivityKind, "activity_kind"), default=ActivityKind.RESOURCE
    )
    login_mode: Mapped[LoginMode] = mapped_column(
        enum_column(LoginMode, "login_mode"), default=LoginMode.MANAGED
    )
    login_template: Mapped[str] = mapped_column(String(128), default="{user}-{random}")
    credential_id: Mapped[int | None] = mapped_column(
        ForeignKey("credentials.id", ondelete="SET NULL"), default=None
    )

    credential: Mapped[Credential | None] = relationship()
    actions: Mapped[list[ActivityAction]] = relationship(
        back_populates="activity",
        cascade="all, delete-orphan",
        order_by="(ActivityAction.phase, ActivityAction.position)",
    )

    def actions_for(self, phase: ActionPhase) -> list[ActivityAction]:
        return [a for a in self.actions if a.phase == phase]


class ActivityAction(Base):
    """One ordered pre- or post-session step; ``action_type`` names a registered action type."""

    __tablename__ = "activity_actions"
    __table_args__ = (UniqueConstraint("activity_id", "phase", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id", ondelete="CASCADE"))
    phase: Mapped[ActionPhase] = mapped_column(enum_column(ActionPhase, "action_phase"))
    position: Mapped[int]
    action_type: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    activity: Mapped[Activity] = relationship(back_populates="actions")


tier_users = Table(
    "approval_tier_users",
    Base.metadata,
    Column("tier_id", ForeignKey("approval_tiers.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
)
tier_groups = Table(
    "approval_tier_groups",
    Base.metadata,
    Column("tier_id", ForeignKey("approval_tiers.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
)


class ConnectionProfile(Base):
    """Session rules: duration, extension, approval tiers, password display, recording."""

    __tablename__ = "connection_profiles"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(String(512), default="")
    max_duration_minutes: Mapped[int] = mapped_column(default=120)
    extension_enabled: Mapped[bool] = mapped_column(default=True)
    extension_minutes: Mapped[int] = mapped_column(default=30)
    extension_max_count: Mapped[int] = mapped_column(default=2)
    warning_minutes: Mapped[int] = mapped_column(default=5)
    requester_may_approve: Mapped[bool] = mapped_column(default=False)
    #: Tiers exist so that different people decide: off, a person decides one tier only.
    approver_may_decide_several_tiers: Mapped[bool] = mapped_column(default=False)
    escalation_minutes: Mapped[int | None] = mapped_column(default=None)
    escalation_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    escalation_group_id: Mapped[int | None] = mapped_column(
        ForeignKey("groups.id", ondelete="SET NULL"), default=None
    )
    notes_required: Mapped[bool] = mapped_column(default=False)
    ticket_required: Mapped[bool] = mapped_column(default=False)
    allow_view_password: Mapped[bool] = mapped_column(default=False)
    allow_copy_password: Mapped[bool] = mapped_column(default=False)
    password_view_seconds: Mapped[int] = mapped_column(default=20)
    recording: Mapped[bool] = mapped_column(default=True)
    #: Remote desktop clients share their clipboard with the target (the ``.rdp`` file's
    #: ``redirectclipboard``); off, nothing is pasted in or copied out by default.
    clipboard_redirection: Mapped[bool] = mapped_column(default=False)

    tiers: Mapped[list[ApprovalTier]] = relationship(
        back_populates="profile", cascade="all, delete-orphan", order_by="ApprovalTier.position"
    )
    escalation_user: Mapped[User | None] = relationship()
    escalation_group: Mapped[Group | None] = relationship()

    @property
    def approval_required(self) -> bool:
        return bool(self.tiers)

    @property
    def allows_extension(self) -> bool:
        """Whether a session under this profile can be extended at all (Ctrl+X is
        offered only then)."""
        return self.extension_enabled and self.extension_max_count > 0

    def tier(self, position: int) -> ApprovalTier | None:
        return next((t for t in self.tiers if t.position == position), None)


#: A profile's numeric fields and the values each allows (inclusive), with their unit.
PROFILE_RANGES: dict[str, tuple[int, int, str]] = {
    "max_duration_minutes": (1, 10080, "minutes (up to one week)"),
    "extension_minutes": (1, 1440, "minutes"),
    "extension_max_count": (0, 20, "extensions"),
    "warning_minutes": (1, 60, "minutes"),
    "password_view_seconds": (5, 300, "seconds"),
    "escalation_minutes": (1, 10080, "minutes"),
}


#: A profile's on/off fields.
PROFILE_FLAGS = (
    "extension_enabled",
    "requester_may_approve",
    "approver_may_decide_several_tiers",
    "notes_required",
    "ticket_required",
    "allow_view_password",
    "allow_copy_password",
    "recording",
    "clipboard_redirection",
)


class ApprovalTier(Base):
    """One of up to three sequential approval steps: ``approvals_required`` of its approvers."""

    __tablename__ = "approval_tiers"
    __table_args__ = (UniqueConstraint("profile_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = mapped_column(
        ForeignKey("connection_profiles.id", ondelete="CASCADE")
    )
    position: Mapped[int]
    approvals_required: Mapped[int] = mapped_column(default=1)

    profile: Mapped[ConnectionProfile] = relationship(back_populates="tiers")
    users: Mapped[list[User]] = relationship(secondary=tier_users, order_by="User.username")
    groups: Mapped[list[Group]] = relationship(secondary=tier_groups, order_by="Group.name")

    def describe_approvers(self) -> str:
        """``the Network Admins group`` / ``carol`` — for "waiting for approval by ..."."""
        names = [f"the {g.name} group" for g in self.groups] + [u.username for u in self.users]
        return " or ".join(names) if names else "nobody (no approvers configured)"


def _link(name: str, other: str) -> Table:
    return Table(
        f"policy_{name}",
        Base.metadata,
        Column("policy_id", ForeignKey("access_policies.id", ondelete="CASCADE"), primary_key=True),
        Column(f"{other}_id", ForeignKey(f"{name}.id", ondelete="CASCADE"), primary_key=True),
    )


policy_users = _link("users", "user")
policy_groups = _link("groups", "group")
policy_activities = _link("activities", "activity")
policy_resources = _link("resources", "resource")


class AccessPolicy(Base):
    """Users and groups × activities × resources → connection profile."""

    __tablename__ = "access_policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    enabled: Mapped[bool] = mapped_column(default=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("connection_profiles.id"))

    profile: Mapped[ConnectionProfile] = relationship()
    users: Mapped[list[User]] = relationship(secondary=policy_users, order_by="User.username")
    groups: Mapped[list[Group]] = relationship(secondary=policy_groups, order_by="Group.name")
    activities: Mapped[list[Activity]] = relationship(
        secondary=policy_activities, order_by="Activity.name"
    )
    resources: Mapped[list[Resource]] = relationship(
        secondary=policy_resources, order_by="Resource.name"
    )
