"""Approval tiers: eligible approvers only, N approvals per tier, tiers in order,
self-approval switch, deny, vetoes from plugins, escalation."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import select

from pamcore import hookimpl
from pamcore.clock import FrozenClock
from pamcore.core import Pamcore
from pamcore.errors import PolicyDenied
from pamcore.lifecycle import Status
from pamcore.model import ActivitySession, ApprovalTier, AuditEvent, Role, User
from pamcore.services import scheduler
from pamcore.services.approvals import approval_queue, approve_session, deny_session
from pamcore.services.sessions import SessionRequest, create_session
from pamcore.testing import builders as b
from tests.world import World, fresh


def request_linux(core: Pamcore, user: User, resource: str = "web01") -> int:
    with core.unit() as db:
        return create_session(
            core, db, fresh(db, user), SessionRequest("Linux Admin", (resource,))
        ).id


def approve(core: Pamcore, user: User, sid: int, comment: str = "") -> Status:
    with core.unit() as db:
        return Status(approve_session(core, db, fresh(db, user), sid, comment).status)


def deny(core: Pamcore, user: User, sid: int, comment: str = "") -> Status:
    with core.unit() as db:
        return Status(deny_session(core, db, fresh(db, user), sid, comment).status)


@dataclass
class Snapshot:
    status: Status
    current_tier: int
    outcome_reason: str
    approvals: list[tuple[str, int, str, bool]]


def state(core: Pamcore, sid: int) -> Snapshot:
    with core.reader() as db:
        s = db.get(ActivitySession, sid)
        return Snapshot(
            Status(s.status),
            s.current_tier,
            s.outcome_reason,
            [(a.approver.username, a.tier, a.comment, a.via_escalation) for a in s.approvals],
        )


@pytest.fixture
def two_tiers(core: Pamcore, world: World) -> World:
    """Tier 1: 2 of Linux Admins (carol, dave, bob made an approver); tier 2: erin alone."""
    with core.unit() as db:
        admins = fresh(db, world.admins)
        bob = fresh(db, world.bob)
        bob.role = Role.APPROVER
        admins.members.append(bob)
        profile = fresh(db, world.approval)
        profile.tiers[0].approvals_required = 2
        profile.tiers.append(
            ApprovalTier(position=2, approvals_required=1, users=[fresh(db, world.erin)])
        )
    return world


def test_single_approval_schedules(core: Pamcore, world: World) -> None:
    sid = request_linux(core, world.alice)
    assert approve(core, world.carol, sid, "ok for CHG42") == Status.SCHEDULED
    assert scheduler.tick(core).activated == [sid]
    s = state(core, sid)
    assert s.approvals == [("carol", 1, "ok for CHG42", False)]


def test_non_approver_refused_with_who_to_wait_for(core: Pamcore, world: World) -> None:
    sid = request_linux(core, world.alice)
    with pytest.raises(PolicyDenied, match="it waits for the Linux Admins group"):
        approve(core, world.erin, sid)
    with core.reader() as db:
        refused = db.scalars(
            select(AuditEvent).where(AuditEvent.action == "approval.refused_approve")
        ).all()
        assert [e.actor for e in refused] == ["erin"]
    assert state(core, sid).status == Status.WAITING_FOR_APPROVAL


def test_n_of_m_and_tiers_in_order(core: Pamcore, two_tiers: World) -> None:
    w = two_tiers
    sid = request_linux(core, w.alice)
    # erin is tier 2: not eligible while tier 1 is open
    with pytest.raises(PolicyDenied, match="not an approver for tier 1"):
        approve(core, w.erin, sid)
    assert approve(core, w.carol, sid) == Status.WAITING_FOR_APPROVAL
    with pytest.raises(PolicyDenied, match="already decided tier 1"):
        approve(core, w.carol, sid)
    assert state(core, sid).current_tier == 1
    assert approve(core, w.dave, sid) == Status.WAITING_FOR_APPROVAL
    assert state(core, sid).current_tier == 2
    # a tier-1 approver cannot decide tier 2
    with pytest.raises(PolicyDenied, match="not an approver for tier 2"):
        approve(core, w.bob, sid)
    assert approve(core, w.erin, sid) == Status.SCHEDULED


def test_deny_ends_the_request(core: Pamcore, two_tiers: World) -> None:
    w = two_tiers
    sid = request_linux(core, w.alice)
    approve(core, w.carol, sid)
    assert deny(core, w.dave, sid, "no change ticket") == Status.DENIED
    s = state(core, sid)
    assert s.outcome_reason == "denied by dave: no change ticket"
    with pytest.raises(PolicyDenied, match="not waiting for approval"):
        approve(core, w.bob, sid)


def test_group_members_approve_only_with_an_approving_role(core: Pamcore, world: World) -> None:
    """A tier's group also grants access: bob (a requester) and ivy (an auditor) in it are
    refused and see nothing in their queue; a user the tier names approves whatever the role."""
    with core.unit() as db:
        ivy = b.make_user(db, "ivy", Role.AUDITOR)
        admins = fresh(db, world.admins)
        admins.members.extend([fresh(db, world.bob), ivy])
    sid = request_linux(core, world.alice)
    for name in ("bob", "ivy"):
        with core.unit() as db:
            person = db.scalar(select(User).where(User.username == name))
            assert approval_queue(core, db, person) == []
            with pytest.raises(PolicyDenied, match="not an approver for tier 1"):
                approve_session(core, db, person, sid)
    with core.unit() as db:
        profile = fresh(db, world.approval)
        profile.tiers[0].users.append(fresh(db, world.bob))
    with core.reader() as db:
        assert [s.id for s in approval_queue(core, db, fresh(db, world.bob))] == [sid]
    assert approve(core, world.bob, sid) == Status.SCHEDULED


def test_one_person_decides_one_tier_unless_the_profile_allows(core: Pamcore, world: World) -> None:
    """carol is in tier 1's group and named in tier 2: she may decide only one of them."""
    with core.unit() as db:
        profile = fresh(db, world.approval)
        profile.tiers.append(
            ApprovalTier(position=2, approvals_required=1, users=[fresh(db, world.carol)])
        )
    sid = request_linux(core, world.alice)
    assert approve(core, world.carol, sid) == Status.WAITING_FOR_APPROVAL
    with core.reader() as db:
        assert approval_queue(core, db, fresh(db, world.carol)) == []
    with pytest.raises(PolicyDenied, match="wants a different person for each tier"):
        approve(core, world.carol, sid)
    with core.reader() as db:
        refused = db.scalars(
            select(AuditEvent).where(AuditEvent.action == "approval.refused_approve")
        ).all()
        assert [e.actor for e in refused] == ["carol"]
    with core.unit() as db:
        profile = fresh(db, world.approval)
        profile.approver_may_decide_several_tiers = True
    with core.reader() as db:
        assert [s.id for s in approval_queue(core, db, fresh(db, world.carol))] == [sid]
    assert approve(core, world.carol, sid) == Status.SCHEDULED


def test_self_approval_switch(core: Pamcore, world: World) -> None:
    with core.unit() as db:
        obj = fresh(db, world.admins)
        alice = fresh(db, world.alice)
        alice.role = Role.APPROVER
        obj.members.append(alice)
    sid = request_linux(core, world.alice)
    with pytest.raises(PolicyDenied, match="cannot approve your own session"):
        approve(core, world.alice, sid)
    with core.unit() as db:
        obj = fresh(db, world.approval)
        obj.requester_may_approve = True
    assert approve(core, world.alice, sid) == Status.SCHEDULED


def test_plugin_veto_wins(core: Pamcore, world: World) -> None:
    class NoCarol:
        @hookimpl
        def pamcore_approval_veto(self, session, approver):
            return "carol is on leave" if approver.username == "carol" else None

    name = core.plugins.register(NoCarol(), "no-carol")
    try:
        sid = request_linux(core, world.alice)
        with pytest.raises(PolicyDenied, match="carol is on leave"):
            approve(core, world.carol, sid)
        assert approve(core, world.dave, sid) == Status.SCHEDULED
    finally:
        core.plugins.unregister(name)


def test_plugin_may_require_approval_then_admins_decide(core: Pamcore, world: World) -> None:
    class Always:
        @hookimpl
        def pamcore_approval_required(self, session):
            return True

    name = core.plugins.register(Always(), "always")
    try:
        with core.unit() as db:
            sid = create_session(
                core, db, fresh(db, world.alice), SessionRequest("Check out root", ("db01",))
            ).id
        assert state(core, sid).status == Status.WAITING_FOR_APPROVAL
        with pytest.raises(PolicyDenied, match="waits for an administrator"):
            approve(core, world.carol, sid)
        assert approve(core, world.erin, sid) == Status.SCHEDULED
    finally:
        core.plugins.unregister(name)


def test_escalation_opens_tier_to_fallback(core: Pamcore, world: World, clock: FrozenClock) -> None:
    with core.unit() as db:
        profile = fresh(db, world.approval)
        profile.escalation_minutes = 10
        profile.escalation_user = fresh(db, world.erin)
    sid = request_linux(core, world.alice)
    with pytest.raises(PolicyDenied):
        approve(core, world.erin, sid)
    clock.advance(minutes=9, seconds=59)
    assert scheduler.tick(core).escalated == []
    clock.advance(seconds=1)
    assert scheduler.tick(core).escalated == [sid]
    assert scheduler.tick(core).escalated == []  # announced once
    assert approve(core, world.erin, sid) == Status.SCHEDULED
    s = state(core, sid)
    assert s.approvals == [("erin", 1, "", True)]
    with core.reader() as db:
        assert db.scalar(
            select(AuditEvent.details).where(AuditEvent.action == "approval.escalated")
        ) == {"tier": 1, "to": "erin"}


def test_escalation_without_scheduler_tick(core: Pamcore, world: World, clock: FrozenClock) -> None:
    """The approve path checks escalation itself, so a slow scheduler never blocks it; an
    escalation group's members approve when they hold an approving role, like a tier's."""
    with core.unit() as db:
        profile = fresh(db, world.approval)
        profile.escalation_minutes = 10
        frank = b.make_user(db, "frank", Role.APPROVER)
        profile.escalation_group = b.make_group(db, "Duty", [frank, fresh(db, world.bob)])
    sid = request_linux(core, world.alice)
    clock.advance(minutes=11)
    with pytest.raises(PolicyDenied, match="not an approver"):
        approve(core, world.bob, sid)
    assert approve(core, frank, sid) == Status.SCHEDULED


def test_queue_lists_what_waits_for_me(core: Pamcore, two_tiers: World) -> None:
    w = two_tiers
    sid = request_linux(core, w.alice)
    with core.reader() as db:
        assert [s.id for s in approval_queue(core, db, fresh(db, w.carol))] == [sid]
        assert approval_queue(core, db, fresh(db, w.erin)) == []
    approve(core, w.carol, sid)
    with core.reader() as db:
        assert approval_queue(core, db, fresh(db, w.carol)) == []
        assert [s.id for s in approval_queue(core, db, fresh(db, w.dave))] == [sid]
