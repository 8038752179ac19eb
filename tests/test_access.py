"""Connection authorisation for the proxies, and the password reveal rules."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from pamcore import hookimpl
from pamcore.clock import FrozenClock
from pamcore.core import Pamcore
from pamcore.errors import PolicyDenied, ValidationError
from pamcore.model import AuditEvent, User
from pamcore.registry import PasswordDisplayDecision
from pamcore.services import scheduler
from pamcore.services.access import authorize_connection, reveal_password
from pamcore.services.approvals import approve_session
from pamcore.services.common import worker_name
from pamcore.services.ending import complete_ending
from pamcore.services.sessions import SessionRequest, create_session, end_session
from pamcore.testing import builders as b
from tests.world import ROOT_PASSWORD, World, fresh


def create(core: Pamcore, user: User, activity: str, resource: str, **kw) -> int:
    with core.unit() as db:
        req = SessionRequest(activity, (resource,), **kw)
        return create_session(core, db, fresh(db, user), req).id


def authorize(core: Pamcore, user: User, resource, protocol="ssh", activity=None):
    with core.unit() as db:
        grant = authorize_connection(
            core,
            db,
            fresh(db, user),
            fresh(db, resource),
            protocol,
            fresh(db, activity) if activity else None,
        )
        return grant.session.id, grant.login_account, grant.password, grant.ends_at


def reveal(core: Pamcore, user: User, sid: int, purpose: str = "view"):
    with core.unit() as db:
        return reveal_password(core, db, fresh(db, user), sid, purpose)


def test_grant_injects_the_managed_credential(core: Pamcore, world: World) -> None:
    sid = create(core, world.alice, "Check out root", "db01")
    scheduler.tick(core)
    got_sid, account, password, ends_at = authorize(core, world.alice, world.db01)
    assert (got_sid, account, password) == (sid, "root", ROOT_PASSWORD)
    assert repr(password) == "Revealed('***')"
    assert ends_at == core.now() + dt.timedelta(minutes=60)


def test_grant_injects_the_ephemeral_account(core: Pamcore, world: World) -> None:
    sid = create(core, world.alice, "Linux Admin", "web01")
    with core.unit() as db:
        approve_session(core, db, fresh(db, world.carol), sid)
    scheduler.tick(core)
    _, account, password, _ = authorize(core, world.alice, world.web01, activity=world.linux_admin)
    assert account.startswith("alice-") and len(account) == len("alice-") + 6
    assert password and len(password) == 24


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("none", "no access policy grants bob web01"),
        ("waiting", "is waiting for approval by the Linux Admins group"),
        ("scheduled", "is scheduled for 14:00 UTC"),
        ("expired", "expired at 11:00 UTC"),
        ("no-session", "you have no session for 'Linux Admin' on web01; request one first"),
        ("wrong-protocol", "web01 does not accept rdp (it offers: ssh)"),
    ],
)
def test_refusals_say_why(
    core: Pamcore, world: World, clock: FrozenClock, setup: str, message: str
) -> None:
    user, resource, protocol, activity = world.alice, world.web01, "ssh", world.linux_admin
    if setup == "none":
        user, activity = world.bob, None
    elif setup == "waiting":
        create(core, world.alice, "Linux Admin", "web01")
    elif setup == "scheduled":
        sid = create(
            core, world.alice, "Linux Admin", "web01", start=clock.now + dt.timedelta(hours=4)
        )
        with core.unit() as db:
            approve_session(core, db, fresh(db, world.carol), sid)
    elif setup == "expired":
        user, resource, activity = world.alice, world.db01, None
        create(core, world.alice, "Check out root", "db01")
        scheduler.tick(core)
        clock.advance(hours=1)
        scheduler.tick(core)
    elif setup == "wrong-protocol":
        protocol = "rdp"
    with pytest.raises(PolicyDenied) as err:
        authorize(core, user, resource, protocol, activity)
    assert message in str(err.value)
    with core.reader() as db:
        refused = db.scalars(
            select(AuditEvent).where(AuditEvent.action == "connection.refused")
        ).all()
        assert [e.details["reason"] for e in refused] == [str(err.value)]


def test_resource_alone_refuses_to_guess_between_activities(core: Pamcore, world: World) -> None:
    with core.unit() as db:
        b.make_policy(
            db,
            "alice db admin",
            fresh(db, world.standard),
            [fresh(db, world.linux_admin)],
            [fresh(db, world.db01)],
            users=[fresh(db, world.alice)],
        )
    checkout = create(core, world.alice, "Check out root", "db01")
    scheduler.tick(core)
    assert authorize(core, world.alice, world.db01)[0] == checkout  # one activity: no doubt
    admin = create(core, world.alice, "Linux Admin", "db01")
    with pytest.raises(PolicyDenied) as err:
        authorize(core, world.alice, world.db01)
    assert str(err.value) == (
        "you have sessions for 2 activities on db01; log in as one of "
        "alice+Check-out-root+db01, alice+Linux-Admin+db01"
    )
    assert authorize(core, world.alice, world.db01, activity=world.checkout)[0] == checkout
    scheduler.tick(core)
    assert authorize(core, world.alice, world.db01, activity=world.linux_admin)[0] == admin
    with core.unit() as db:
        end_session(core, db, fresh(db, world.alice), checkout)
    complete_ending(core, checkout, worker_name(), "test")
    assert authorize(core, world.alice, world.db01)[0] == admin


def test_grant_refused_past_end_even_before_scheduler_runs(
    core: Pamcore, world: World, clock: FrozenClock
) -> None:
    create(core, world.alice, "Check out root", "db01")
    scheduler.tick(core)
    clock.advance(minutes=60)
    with pytest.raises(PolicyDenied, match="expired at 11:00 UTC"):
        authorize(core, world.alice, world.db01)


def test_reveal_for_credential_activity(core: Pamcore, world: World) -> None:
    sid = create(core, world.alice, "Check out root", "db01")
    scheduler.tick(core)
    shown = reveal(core, world.alice, sid, "copy")
    assert (shown.password, shown.seconds, shown.username) == (ROOT_PASSWORD, 20, "root")
    assert shown.expires_at == core.now() + dt.timedelta(seconds=20)
    assert ROOT_PASSWORD not in repr(shown)
    with core.reader() as db:
        event = db.scalar(select(AuditEvent).where(AuditEvent.action == "password.revealed"))
        assert event.details == {"purpose": "copy", "account": "root", "seconds": 20}


def test_reveal_rules(core: Pamcore, world: World) -> None:
    sid = create(core, world.alice, "Linux Admin", "web01")
    # The Approval profile does not allow view or copy for a resource-based activity.
    with pytest.raises(PolicyDenied, match="does not allow you to view the password"):
        reveal(core, world.alice, sid)
    with core.unit() as db:
        profile = fresh(db, world.approval)
        profile.allow_view_password = True
        profile.password_view_seconds = 30
    # Someone else learns nothing of the session's state (issue 11 item 7).
    with pytest.raises(PolicyDenied) as refused:
        reveal(core, world.bob, sid)
    assert str(refused.value) == "only the requester may see this password"
    with pytest.raises(PolicyDenied, match="only available while the session is Available"):
        reveal(core, world.alice, sid)
    with core.unit() as db:
        approve_session(core, db, fresh(db, world.carol), sid)
    scheduler.tick(core)
    assert reveal(core, world.alice, sid).seconds == 30
    with pytest.raises(PolicyDenied, match="does not allow you to copy"):
        reveal(core, world.alice, sid, "copy")
    with pytest.raises(PolicyDenied, match="only the requester"):
        reveal(core, world.erin, sid)
    with pytest.raises(ValidationError):
        reveal(core, world.alice, sid, "print")
    with core.reader() as db:
        actions = [
            e.action
            for e in db.scalars(
                select(AuditEvent)
                .where(AuditEvent.action.like("password.%"))
                .order_by(AuditEvent.id)
            )
        ]
    assert actions == [
        "password.refused",
        "password.refused",
        "password.refused",
        "password.revealed",
        "password.refused",
        "password.refused",
    ]


def test_reveal_plugin_can_shorten_or_refuse(core: Pamcore, world: World) -> None:
    class Short:
        @hookimpl
        def pamcore_password_display_policy(self, session, viewer, purpose):
            if purpose == "copy":
                return PasswordDisplayDecision(False, reason="copying is disabled here")
            return PasswordDisplayDecision(True, seconds=5)

    name = core.plugins.register(Short(), "short")
    try:
        sid = create(core, world.alice, "Check out root", "db01")
        scheduler.tick(core)
        assert reveal(core, world.alice, sid).seconds == 5
        with pytest.raises(PolicyDenied, match="copying is disabled here"):
            reveal(core, world.alice, sid, "copy")
    finally:
        core.plugins.unregister(name)
