"""The small hierarchy of errors every edge turns into a clean message.

The CLI prints ``str(error)`` and exits with ``error.exit_code``; the web shows it as a flash
message or a JSON problem; a proxy writes it as one line to the user's terminal. Messages
are written for the person who hit them and never contain a secret.
"""

from __future__ import annotations

from typing import Any


class PamError(Exception):
    """Base of every error pamcore reports to a person."""

    exit_code = 1
    #: Short machine-readable kind, used in JSON output and audit details.
    kind = "error"
    #: An audit event to record even though the unit of work that raised is rolled back
    #: (a refused reveal or connection must be in the log); see ``Pamcore.unit``.
    audit_entry: dict[str, Any] | None = None

    def audited(self, actor: str, action: str, **entry: Any) -> PamError:
        """Attach the audit event this refusal must leave behind; returns ``self`` to raise."""
        self.audit_entry = {"actor": actor, "action": action, "reason": str(self), **entry}
        return self


class NotFound(PamError):
    """A named object does not exist."""

    exit_code = 3
    kind = "not_found"


class ValidationError(PamError):
    """Input was rejected; ``field`` names what to fix."""

    exit_code = 2
    kind = "validation"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class PolicyDenied(PamError):
    """The actor is not allowed to do this; the message says why in plain words."""

    exit_code = 4
    kind = "denied"


class InvalidTransition(PamError):
    """An activity session was asked to move between states the lifecycle does not allow."""

    exit_code = 5
    kind = "invalid_transition"

    def __init__(self, session_id: int | None, current: str, target: str) -> None:
        super().__init__(f"session {session_id}: cannot go from '{current}' to '{target}'")
        self.session_id = session_id
        self.current = current
        self.target = target


class AuthenticationFailed(PamError):
    """Wrong credentials, or the account is locked; deliberately vague about which part."""

    exit_code = 6
    kind = "authentication"


class VaultError(PamError):
    """The vault cannot encrypt or decrypt (missing or wrong master key, tampered data)."""

    exit_code = 7
    kind = "vault"


class AuditChainBroken(PamError):
    """``audit verify`` found an edited, inserted or deleted audit row."""

    exit_code = 8
    kind = "audit_chain"


class ProtocolError(PamError):
    """A protocol plugin could not do what was asked (unreachable host, handshake failure)."""

    exit_code = 9
    kind = "protocol"


class ConfigurationError(PamError):
    """The instance or a plugin is configured wrongly; the message names the setting."""

    exit_code = 10
    kind = "configuration"


class ActionFailed(PamError):
    """A pre- or post-session action failed; the session goes to ``failed``."""

    exit_code = 11
    kind = "action_failed"
