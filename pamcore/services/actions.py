"""Running an activity's pre- and post-session actions through the registered action types."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.errors import ActionFailed, ValidationError
from pamcore.model import ActionPhase, Activity, ActivitySession, LoginMode, Resource
from pamcore.passwords import generate_password
from pamcore.registry import ActionContext

log = logging.getLogger(__name__)

ACTOR = "system:actions"

TEMPLATE_FIELDS = {"user", "random", "activity"}
_FIELD = re.compile(r"\{([^{}]*)\}")
#: What a POSIX / Windows / IOS local account name may contain; templates must produce it.
_ACCOUNT = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")


def check_login_template(template: str) -> None:
    """Reject a template that names unknown fields or cannot make a valid account name."""
    unknown = set(_FIELD.findall(template)) - TEMPLATE_FIELDS
    if unknown:
        raise ValidationError(
            "login_template",
            f"unknown field(s) {', '.join('{' + u + '}' for u in sorted(unknown))}; "
            f"use {{user}}, {{random}}, {{activity}}",
        )
    sample = render_login_template(template, "user", "activity")
    if not _ACCOUNT.fullmatch(sample):
        raise ValidationError(
            "login_template", f"produces '{sample}', which is not a valid account name"
        )


def render_login_template(template: str, username: str, activity_name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", activity_name.lower()).strip("-")
    user = re.sub(r"[^a-z0-9_.-]+", "", username.lower())
    name = template.format(user=user, random=secrets.token_hex(3), activity=slug)
    return name[:32]


def check_action_types(core: Pamcore, activity: Activity) -> None:
    """An activity naming an action type no plugin registered fails now, not at start time."""
    known = core.hooks.actions()
    for action in activity.actions:
        if action.action_type not in known:
            raise ValidationError(
                "action",
                f"action type '{action.action_type}' is not installed "
                f"(known: {', '.join(sorted(known)) or 'none'})",
            )


def assign_login_account(core: Pamcore, db: Session, session: ActivitySession) -> str | None:
    """Choose the session's login account; returns a new ephemeral password, if any."""
    activity = session.activity
    if activity.login_mode == LoginMode.EPHEMERAL and activity.kind.value == "resource":
        session.login_account = render_login_template(
            activity.login_template, session.requester.username, activity.name
        )
        password = generate_password()
        session.login_secret = core.vault.store(db, password)
        return password
    credential = activity.credential
    if credential is None:
        raise ActionFailed(
            f"activity '{activity.name}' has no login credential; an administrator must set one"
        )
    session.login_credential = credential
    session.login_account = credential.username
    return None


def run_actions(
    core: Pamcore,
    session: ActivitySession,
    phase: ActionPhase,
    password: str | None,
    *,
    best_effort: bool = False,
) -> list[str]:
    """Run the phase's actions for every resource, in order, outside any write transaction
    (each audit event an action records is a unit of its own).

    Raises :class:`ActionFailed` on the first failure, unless ``best_effort`` (removals,
    cleanup after a failure), where every action runs and the failures are returned.
    """
    known = core.hooks.actions()
    failures: list[str] = []

    def auditor(resource: Resource) -> Callable[..., None]:
        def audit(action: str, **details: Any) -> None:
            details.setdefault("account", session.login_account)
            with core.unit() as db:
                core.audit(
                    db, ACTOR, action, target=resource.name, session_id=session.id, **details
                )

        return audit

    for resource in session.resources:
        for action in session.activity.actions_for(phase):
            action_type = known.get(action.action_type)
            try:
                if action_type is None:
                    raise ActionFailed(f"action type '{action.action_type}' is not installed")
                action_type.run(
                    ActionContext(
                        core=core,
                        session=session,
                        resource=resource,
                        login_account=session.login_account,
                        login_password=password,
                        params=dict(action.params),
                        now=core.now(),
                        audit=auditor(resource),
                    )
                )
            except Exception as exc:
                message = (
                    f"{phase.value}-session action '{action.action_type}' failed on "
                    f"{resource.name}: {exc}"
                )
                log.warning("session %s: %s", session.id, message)
                if not best_effort:
                    raise ActionFailed(message) from exc
                failures.append(message)
    return failures
