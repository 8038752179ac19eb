"""Built-in action types that need no protocol plugin."""

from __future__ import annotations

from collections.abc import Callable

from pamcore import hookimpl
from pamcore.registry import ActionContext, ActionType


def _audit_note(ctx: ActionContext) -> None:
    """Writes the action's message to the audit log: a marker operators can search for."""
    ctx.audit("action.note", message=str(ctx.params.get("message", "")))


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
