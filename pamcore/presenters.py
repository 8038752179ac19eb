"""Plain-dict views of domain objects and the words that describe them, shared by the CLI,
the REST API, the dashboard and the admin pages, so all of them say the same thing."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pamcore.lifecycle import Status
from pamcore.model import (
    AccessPolicy,
    ActionPhase,
    Activity,
    ActivityAction,
    ActivityKind,
    ActivitySession,
    ApiToken,
    ApprovalTier,
    AuditEvent,
    ConnectionProfile,
    Credential,
    Group,
    LoginMode,
    Resource,
    Role,
    User,
)
from pamcore.model.policy import PROFILE_FLAGS, PROFILE_RANGES
from pamcore.registry import ActionType

if TYPE_CHECKING:  # services import this module for their audit summaries
    from pamcore.services.sessions import Extension


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


def _either(names: list[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _both(names: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def tier_words(tier: ApprovalTier) -> str:
    """``carol`` when one named person decides, else ``2 of Linux Admins or carol``."""
    names = [g.name for g in tier.groups] + [u.username for u in tier.users]
    if not names:
        return "nobody (no approvers configured)"
    if tier.approvals_required == 1 and not tier.groups and len(names) == 1:
        return names[0]
    return f"{tier.approvals_required} of {_either(names)}"


def approval_sentence(tiers: list[ApprovalTier]) -> str:
    """The approval path as a sentence: ``Tier 1: 1 of Linux Admins, then tier 2: carol``."""
    if not tiers:
        return "No approval: sessions are scheduled at once."
    steps = [f"tier {t.position}: {tier_words(t)}" for t in tiers]
    sentence = ", then ".join(steps)
    return sentence[0].upper() + sentence[1:]


def _minutes(count: int) -> str:
    if count % 1440 == 0:
        days = count // 1440
        return f"{days} day{'s' if days != 1 else ''}"
    if count % 60 == 0:
        hours = count // 60
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{count} minute{'s' if count != 1 else ''}"


def profile_rules(profile: ConnectionProfile) -> list[tuple[str, str]]:
    """A connection profile's rules in words, as (topic, sentence) pairs."""
    p = profile
    if p.allows_extension:
        extension = (
            f"Up to {p.extension_max_count} extension{'s' if p.extension_max_count != 1 else ''}"
            f" of {_minutes(p.extension_minutes)} each."
        )
    else:
        extension = "Sessions cannot be extended."
    escalate_to = (
        p.escalation_user.username
        if p.escalation_user
        else (f"the {p.escalation_group.name} group" if p.escalation_group else None)
    )
    if p.escalation_minutes and escalate_to:
        escalation = (
            f"A request still waiting after {_minutes(p.escalation_minutes)} "
            f"may also be decided by {escalate_to}."
        )
    else:
        escalation = "Off."
    asks = [
        what for what, on in (("notes", p.notes_required), ("a ticket", p.ticket_required)) if on
    ]
    if p.allow_view_password:
        reveal = f"Shown for {p.password_view_seconds} seconds" + (
            ", and may be copied." if p.allow_copy_password else ", never copied."
        )
    elif p.allow_copy_password:
        reveal = "May be copied, never shown."
    else:
        reveal = "Never shown or copied: pamcore logs in for the user."
    return [
        (
            "Duration",
            f"Sessions last up to {_minutes(p.max_duration_minutes)}; "
            f"users are warned {_minutes(p.warning_minutes)} before the end.",
        ),
        ("Extensions", extension),
        ("Approval", approval_sentence(list(p.tiers))),
        (
            "Requester approves",
            "The requester may approve their own request."
            if p.requester_may_approve
            else "Never their own request.",
        ),
        (
            "Several tiers",
            "One person may decide more than one tier."
            if p.approver_may_decide_several_tiers
            else "Each tier is decided by someone else.",
        ),
        ("Escalation", escalation),
        ("Request asks for", _both(asks) + "." if asks else "Nothing beyond the schedule."),
        ("Password", reveal),
        ("Recording", "Every connection is recorded." if p.recording else "Off."),
        (
            "Clipboard",
            "Remote desktop clipboards are shared."
            if p.clipboard_redirection
            else "Not shared with remote desktops.",
        ),
    ]


def policy_sentence(policy: AccessPolicy) -> str:
    """``alice and the DBAs group may run Linux Admin on web01 or web02 under Quick.``"""
    who = [u.username for u in policy.users] + [f"the {g.name} group" for g in policy.groups]
    return (
        f"{_both(who) if who else 'Nobody'} may run {_either([a.name for a in policy.activities])}"
        f" on {_either([r.name for r in policy.resources])} under {policy.profile.name}."
    )


def activity_rules(activity: Activity) -> list[tuple[str, str]]:
    """What an activity lets a user do and how its sessions log in, as (topic, sentence)."""
    credential = activity.credential
    if activity.kind == ActivityKind.CREDENTIAL:
        kind = "Credential checkout: the user is given the credential's password for the session."
    else:
        kind = (
            "Work on resources: the user connects through pamcore to the resources a policy names."
        )
    if activity.login_mode == LoginMode.EPHEMERAL:
        template = activity.login_template or "{user}-{random}"
        login = f"A new account for each session, named from the template {template}."
    elif credential is not None:
        login = f"As {credential.username}, with the vaulted credential {credential.name}."
    else:
        login = "No credential chosen: sessions cannot log in until one is."
    return [("Kind", kind), ("Login", login)]


def action_words(action: ActivityAction, spec: ActionType | None) -> str:
    """``Write a note to the audit log ..., with message "create account".``"""
    if spec is None:
        return "No installed plugin provides this action type."
    given = [f'{key.replace("_", " ")} "{value}"' for key, value in sorted(action.params.items())]
    return spec.description + (f", with {_both(given)}." if given else ".")


_PLATFORMS = {"linux": "Linux", "windows": "Windows", "cisco-ios": "Cisco IOS", "other": "Other"}


def _key_fingerprint(key_line: str) -> str:
    """``ssh-ed25519 SHA256:...`` as ``ssh-keygen -l`` shows a public-key line."""
    kind, blob = key_line.split()[:2]  # the service only pins "TYPE BASE64 [comment]"
    try:
        digest = hashlib.sha256(base64.b64decode(blob, validate=True)).digest()
    except (binascii.Error, ValueError):
        return f"{kind} {blob[:16]}..."
    return f"{kind} SHA256:{base64.b64encode(digest).decode().rstrip('=')}"


def host_key_words(resource: Resource) -> str:
    """Which host key (SSH) or certificate (RDP) a proxy accepts from the resource."""
    pinned = (resource.host_key or "").strip()
    if pinned.lower().startswith("sha256:"):
        return f"Pinned to SHA256:{pinned[7:]}; any other key is refused."
    if pinned:
        return f"Pinned to {_key_fingerprint(pinned)}; any other key is refused."
    if resource.trust_on_first_use:
        return (
            "Not pinned yet: the first host key (SSH) or certificate (RDP) a proxy sees "
            "is trusted and pinned."
        )
    return "Not pinned, and a first key is not trusted: connections are refused until one is."


def resource_rules(resource: Resource) -> list[tuple[str, str]]:
    """Where a resource is and how pamcore reaches it, as (topic, sentence) pairs."""
    ports = [f"{p.name} on port {p.port}" for p in resource.protocols]
    return [
        ("Address", resource.address),
        ("Platform", _PLATFORMS.get(resource.platform.value, resource.platform.value)),
        ("Protocols", _both(ports) + "." if ports else "None."),
        ("Host key", host_key_words(resource)),
    ]


_ROLES = {
    Role.USER: "User: requests sessions.",
    Role.APPROVER: "Approver: requests sessions, and approves others' where a tier names them.",
    Role.ADMIN: "Administrator: runs pamcore (users, resources, policies, the vault).",
    Role.AUDITOR: "Auditor: reads every session, the audit log and the recordings.",
}


def role_words(role: Role) -> str:
    """``Approver: requests sessions, and approves others' where a tier names them.``"""
    return _ROLES[role]


# -- records: what the edges show of an object (never a hash or a secret) -----------------


def user_record(user: User) -> dict[str, Any]:
    """What the edges show about a user (never the hash)."""
    return {
        "username": user.username,
        "display_name": user.display_name,
        "email": user.email,
        "role": user.role,
        "active": user.is_active,
        "locked_until": user.locked_until,
        "failed_logins": user.failed_logins,
        "has_password": user.password_hash is not None,
        "groups": [g.name for g in user.groups],
        "created_at": user.created_at,
    }


def group_record(group: Group) -> dict[str, Any]:
    return {
        "name": group.name,
        "description": group.description,
        "members": [u.username for u in group.members],
    }


def token_record(record: ApiToken) -> dict[str, Any]:
    """What the edges show about a token (never its hash)."""
    return {
        "id": record.id,
        "name": record.name,
        "prefix": record.prefix,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "last_used_at": record.last_used_at,
    }


def resource_record(resource: Resource) -> dict[str, Any]:
    return {
        "name": resource.name,
        "address": resource.address,
        "platform": resource.platform,
        "protocols": [f"{p.name}:{p.port}" for p in resource.protocols],
        "description": resource.description,
        "host_key": resource.host_key,
        "trust_on_first_use": resource.trust_on_first_use,
        "settings": {
            f"{plugin}.{key}": value
            for plugin, values in sorted((resource.settings or {}).items())
            for key, value in sorted(values.items())
        },
    }


def credential_record(credential: Credential) -> dict[str, Any]:
    """What the edges show: whether secrets are stored, never the secrets."""
    return {
        "name": credential.name,
        "username": credential.username,
        "resource": credential.resource.name if credential.resource else None,
        "managed": credential.managed,
        "has_password": credential.password_secret is not None,
        "has_private_key": credential.private_key_secret is not None,
        "description": credential.description,
        "rotated_at": credential.rotated_at,
    }


def policy_record(policy: AccessPolicy) -> dict[str, Any]:
    return {
        "name": policy.name,
        "enabled": policy.enabled,
        "profile": policy.profile.name,
        "users": [u.username for u in policy.users],
        "groups": [g.name for g in policy.groups],
        "activities": [a.name for a in policy.activities],
        "resources": [r.name for r in policy.resources],
    }


def profile_record(profile: ConnectionProfile) -> dict[str, Any]:
    record: dict[str, Any] = {"name": profile.name, "description": profile.description}
    record.update({f: getattr(profile, f) for f in PROFILE_RANGES if f != "escalation_minutes"})
    record.update({f: getattr(profile, f) for f in PROFILE_FLAGS})
    record["approval_tiers"] = [
        f"{t.position}: {t.approvals_required} of {t.describe_approvers()}" for t in profile.tiers
    ]
    record["escalation_minutes"] = profile.escalation_minutes
    record["escalation_to"] = (
        profile.escalation_user.username
        if profile.escalation_user
        else (f"the {profile.escalation_group.name} group" if profile.escalation_group else None)
    )
    return record


def activity_record(activity: Activity) -> dict[str, Any]:
    return {
        "name": activity.name,
        "description": activity.description,
        "kind": activity.kind,
        "login_mode": activity.login_mode,
        "login_template": activity.login_template
        if activity.login_mode == LoginMode.EPHEMERAL
        else None,
        "credential": activity.credential.name if activity.credential else None,
        "pre_actions": _steps(activity, ActionPhase.PRE),
        "post_actions": _steps(activity, ActionPhase.POST),
    }


def _steps(activity: Activity, phase: ActionPhase) -> list[str]:
    return [
        f"{a.position}. {a.action_type}" + (f" {json.dumps(a.params)}" if a.params else "")
        for a in activity.actions_for(phase)
    ]


# -- sessions -------------------------------------------------------------------------------


def describe_remaining(session: ActivitySession, now: dt.datetime) -> str:
    remaining = session.remaining(now)
    if remaining is None:
        return "-"
    minutes = int(remaining.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def extensions_left_phrase(extension: Extension) -> str:
    left = extension.extensions_left
    return f"{left} extension{'s' if left != 1 else ''} left"


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
