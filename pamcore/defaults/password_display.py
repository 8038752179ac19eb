"""Default password-display rule (NPS-style): the requester may view or copy the session's
password when the connection profile allows it, always for credential-based activities."""

from __future__ import annotations

from pamcore import hookimpl
from pamcore.model import ActivityKind, ActivitySession, User
from pamcore.registry import PasswordDisplayDecision


@hookimpl
def pamcore_password_display_policy(
    session: ActivitySession, viewer: User, purpose: str
) -> PasswordDisplayDecision:
    profile = session.profile
    seconds = profile.password_view_seconds
    if viewer.id != session.requester_id:
        return PasswordDisplayDecision(False, reason="only the requester may see this password")
    if session.activity.kind == ActivityKind.CREDENTIAL:
        return PasswordDisplayDecision(True, seconds=seconds)
    allowed = profile.allow_view_password if purpose == "view" else profile.allow_copy_password
    if not allowed:
        return PasswordDisplayDecision(
            False,
            reason=f"connection profile '{profile.name}' does not allow you to {purpose} "
            f"the password",
        )
    return PasswordDisplayDecision(True, seconds=seconds)
