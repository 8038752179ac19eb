"""Plain-dict views of domain objects, shared by the CLI and (later) the REST API, so both
show a session the same way."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from typing import Any

from pamcore.lifecycle import Status
from pamcore.model import ActivitySession, AuditEvent
from pamcore.services.sessions import describe_remaining


def plain(value: Any) -> Any:
    """JSON-ready data: times as ISO 8601 UTC with ``Z``, enums as their values."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    return value


def session_row(session: ActivitySession, now: dt.datetime) -> dict[str, Any]:
    status = Status(session.status)
    return {
        "id": session.id,
        "activity": session.activity.name,
        "resources": [r.name for r in session.resources],
        "requester": session.requester.username,
        "status": status.value,
        "status_label": status.label,
        "start": session.started_at or session.scheduled_start,
        "ends_at": session.ends_at,
        "remaining": describe_remaining(session, now) if session.ends_at else None,
    }


def session_detail(session: ActivitySession, now: dt.datetime) -> dict[str, Any]:
    tier = session.profile.tier(session.current_tier)
    detail = session_row(session, now)
    detail.update(
        {
            "profile": session.profile.name,
            "notes": session.notes,
            "ticket": session.ticket,
            "scheduled_start": session.scheduled_start,
            "login_account": session.login_account or None,
            "extensions_used": session.extensions_used,
            "extensions_left": session.extensions_left,
            "current_tier": session.current_tier or None,
            "waiting_for": tier.describe_approvers()
            if tier and Status(session.status) == Status.WAITING_FOR_APPROVAL
            else None,
            "approvals": [
                {
                    "tier": a.tier,
                    "approver": a.approver.username,
                    "decision": a.decision.value,
                    "comment": a.comment,
                    "at": a.decided_at,
                    "via_escalation": a.via_escalation,
                }
                for a in session.approvals
            ],
            "outcome": session.outcome_reason or None,
            "finished_at": session.finished_at,
        }
    )
    return detail


def audit_row(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": event.at,
        "actor": event.actor,
        "action": event.action,
        "target": event.target,
        "session": event.session_id,
        "details": event.details,
    }
