"""pamcore's domain model (SQLAlchemy 2 typed mappings). Import models from here."""

from pamcore.lifecycle import Status
from pamcore.model.audit import AuditEvent, AuditHead
from pamcore.model.base import Base
from pamcore.model.directory import ApiToken, Group, Role, User, UserKey
from pamcore.model.inventory import Credential, Platform, Resource, ResourceProtocol, Secret
from pamcore.model.policy import (
    AccessPolicy,
    ActionPhase,
    Activity,
    ActivityAction,
    ActivityKind,
    ApprovalTier,
    ConnectionProfile,
    LoginMode,
)
from pamcore.model.sessions import (
    ActivitySession,
    Approval,
    CompletedAction,
    Decision,
    LiveConnection,
    Recording,
)
from pamcore.model.single_use import RecordingBudget, SingleUse

__all__ = [
    "AccessPolicy",
    "ActionPhase",
    "Activity",
    "ActivityAction",
    "ActivityKind",
    "ActivitySession",
    "ApiToken",
    "Approval",
    "ApprovalTier",
    "AuditEvent",
    "AuditHead",
    "Base",
    "CompletedAction",
    "ConnectionProfile",
    "Credential",
    "Decision",
    "Group",
    "LiveConnection",
    "LoginMode",
    "Platform",
    "Recording",
    "RecordingBudget",
    "Resource",
    "ResourceProtocol",
    "Role",
    "Secret",
    "SingleUse",
    "Status",
    "User",
    "UserKey",
]
