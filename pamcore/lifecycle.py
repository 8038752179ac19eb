"""The activity-session state machine: the one place that says which moves are legal.

See docs/design/lifecycle.md for the diagram. Every status change in pamcore goes through
:func:`transition`; an illegal move raises :class:`~pamcore.errors.InvalidTransition`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Protocol

from pamcore.errors import InvalidTransition


class Status(enum.StrEnum):
    REQUESTED = "requested"
    WAITING_FOR_APPROVAL = "waiting_for_approval"
    SCHEDULED = "scheduled"
    PROVISIONING = "provisioning"
    AVAILABLE = "available"
    ACTIVE = "active"
    ENDING = "ending"
    ENDED = "ended"
    DENIED = "denied"
    FAILED = "failed"
    CANCELED = "canceled"
    EXPIRED = "expired"

    @property
    def label(self) -> str:
        """How people see the status: ``Waiting for Approval``."""
        return " ".join(w if w == "for" else w.capitalize() for w in self.value.split("_"))


S = Status

#: current status -> statuses it may move to. Cancelling a provisioned session (available,
#: active) goes through ``ending`` so post-session actions still remove what pre-session
#: actions created; ``ending`` then settles on the outcome (ended, expired, canceled) or
#: ``failed`` when a post-session action fails.
TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    S.REQUESTED: frozenset({S.WAITING_FOR_APPROVAL, S.SCHEDULED, S.CANCELED}),
    S.WAITING_FOR_APPROVAL: frozenset({S.SCHEDULED, S.DENIED, S.CANCELED}),
    S.SCHEDULED: frozenset({S.PROVISIONING, S.CANCELED}),
    S.PROVISIONING: frozenset({S.AVAILABLE, S.FAILED, S.CANCELED}),
    S.AVAILABLE: frozenset({S.ACTIVE, S.ENDING, S.EXPIRED, S.CANCELED}),
    S.ACTIVE: frozenset({S.AVAILABLE, S.ENDING, S.EXPIRED, S.CANCELED}),
    S.ENDING: frozenset({S.ENDED, S.EXPIRED, S.CANCELED, S.FAILED}),
    S.ENDED: frozenset(),
    S.DENIED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELED: frozenset(),
    S.EXPIRED: frozenset(),
}

TERMINAL: frozenset[Status] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)
#: States in which the session's resources may be connected to.
CONNECTABLE: frozenset[Status] = frozenset({S.AVAILABLE, S.ACTIVE})
#: States shown on Dashboard > Active (everything not finished).
OPEN: frozenset[Status] = frozenset(TRANSITIONS) - TERMINAL


class HasStatus(Protocol):
    id: int | None
    status: Status


def can_transition(current: Status, target: Status) -> bool:
    return target in TRANSITIONS[current]


def transition(obj: HasStatus, target: Status) -> Status:
    """Move ``obj`` to ``target`` or raise; returns the previous status."""
    current = Status(obj.status)
    if not can_transition(current, target):
        raise InvalidTransition(obj.id, current.value, target.value)
    obj.status = target
    return current
