"""Every legal and every illegal transition of the session state machine."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from pamcore.errors import InvalidTransition
from pamcore.lifecycle import CONNECTABLE, OPEN, TERMINAL, TRANSITIONS, Status, transition

S = Status


@dataclass
class Thing:
    status: Status
    id: int | None = 7


# The lifecycle of docs/design/lifecycle.md, written out independently of the module's table.
EXPECTED = {
    (S.REQUESTED, S.WAITING_FOR_APPROVAL),
    (S.REQUESTED, S.SCHEDULED),
    (S.WAITING_FOR_APPROVAL, S.SCHEDULED),
    (S.WAITING_FOR_APPROVAL, S.DENIED),
    (S.SCHEDULED, S.PROVISIONING),
    (S.PROVISIONING, S.AVAILABLE),
    (S.PROVISIONING, S.FAILED),
    (S.AVAILABLE, S.ACTIVE),
    (S.ACTIVE, S.AVAILABLE),
    (S.AVAILABLE, S.ENDING),
    (S.ACTIVE, S.ENDING),
    (S.AVAILABLE, S.EXPIRED),
    (S.ACTIVE, S.EXPIRED),
    (S.ENDING, S.ENDED),
    (S.ENDING, S.EXPIRED),
    (S.ENDING, S.CANCELED),
    (S.ENDING, S.FAILED),
} | {
    (s, S.CANCELED)
    for s in (
        S.REQUESTED,
        S.WAITING_FOR_APPROVAL,
        S.SCHEDULED,
        S.PROVISIONING,
        S.AVAILABLE,
        S.ACTIVE,
    )
}


@pytest.mark.parametrize(("current", "target"), sorted(EXPECTED))
def test_legal_transition_moves(current: Status, target: Status) -> None:
    thing = Thing(current)
    assert transition(thing, target) == current
    assert thing.status == target


ILLEGAL = sorted(set(itertools.product(Status, Status)) - EXPECTED)


@pytest.mark.parametrize(("current", "target"), ILLEGAL)
def test_illegal_transition_raises_and_changes_nothing(current: Status, target: Status) -> None:
    thing = Thing(current)
    with pytest.raises(InvalidTransition) as err:
        transition(thing, target)
    assert thing.status == current
    assert f"cannot go from '{current.value}' to '{target.value}'" in str(err.value)
    assert "session 7" in str(err.value)


def test_table_matches_the_architecture() -> None:
    table = {(a, b) for a, nexts in TRANSITIONS.items() for b in nexts}
    assert table == EXPECTED


def test_state_groups() -> None:
    assert {S.ENDED, S.DENIED, S.FAILED, S.CANCELED, S.EXPIRED} == TERMINAL
    assert {S.AVAILABLE, S.ACTIVE} == CONNECTABLE
    assert S.ENDING in OPEN and S.ENDED not in OPEN


def test_labels_read_like_the_dashboard() -> None:
    assert S.WAITING_FOR_APPROVAL.label == "Waiting for Approval"
    assert S.AVAILABLE.label == "Available"
