"""Built-in action types that need no protocol plugin."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import object_session

from pamcore import hookimpl
from pamcore.registry import ActionContext, ActionType


def _audit_note(ctx: ActionContext) -> None:
    """Writes the action's message to the audit log: a marker operators can search for."""
    db = object_session(ctx.session)
    assert db is not None
    ctx.core.audit(
        db,
        "system:actions",
        "action.note",
        target=ctx.resource.name,
        session_id=ctx.session.id,
        message=str(ctx.params.get("message", "")),
        account=ctx.login_account,
    )


@hookimpl
def pamcore_register_actions(register: Callable[[ActionType], None]) -> None:
    register(
        ActionType(
            name="audit-note",
            description="Write a note to the audit log for each resource of the session",
            run=_audit_note,
            params={"message": "the text to record"},
        )
    )
