"""Creating, cancelling, ending and extending sessions through the service layer."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from pamcore.clock import FrozenClock
from pamcore.core import Pamcore
from pamcore.errors import PolicyDenied, ValidationError
from pamcore.lifecycle import Status
from pamcore.model import ActivitySession, AuditEvent
from pamcore.services import scheduler
from pamcore.services.approvals import approve_session
from pamcore.services.common import worker_name
from pamcore.services.ending import complete_ending
from pamcore.services.sessions import (
    SessionRequest,
    cancel_session,
    create_session,
    end_session,
    extend_session,
    find_or_request,
    list_sessions,
)
from pamcore.testing import builders as b
from tests.world import World, fresh


def request(activity: str = "Check out root", *resources: str, **kw) -> SessionRequest:
    return SessionRequest(activity=activity, resources=resources or ("db01",), **kw)


def create(core: Pamcore, user, req: SessionRequest) -> int:
    with core.unit() as db:
        return create_session(core, db, fresh(db, user), req).id


def status(core: Pamcore, session_id: int) -> Status:
    with core.reader() as db:
        return Status(db.get(ActivitySession, session_id).status)


def available_session(core: Pamcore, world: World) -> int:
    sid = create(core, world.alice, request())
    scheduler.tick(core)
    assert status(core, sid) == Status.AVAILABLE
    return sid


def test_no_approval_goes_to_scheduled_then_available(core: Pamcore, world: World) -> None:
    sid = create(core, world.alice, request(notes="rotate certs"))
    assert status(core, sid) == Status.SCHEDULED
    report = scheduler.tick(core)
    assert report.activated == [sid]
    with core.reader() as db:
        s = db.get(ActivitySession, sid)
        assert s.login_account == "root"
        assert s.ends_at == s.started_at + dt.timedelta(minutes=60)


def test_approval_profile_waits(core: Pamcore, world: World) -> None:
    sid = create(core, world.alice, request("Linux Admin", "web01"))
    assert status(core, sid) == Status.WAITING_FOR_APPROVAL
    assert scheduler.tick(core).activated == []


def test_policy_must_cover_every_resource(core: Pamcore, world: World) -> None:
    with pytest.raises(PolicyDenied, match="no access policy grants alice .* on db01"):
        create(core, world.alice, request("Linux Admin", "web01", "db01"))
    with pytest.raises(PolicyDenied, match="no access policy grants bob"):
        create(core, world.bob, request("Linux Admin", "web01"))


def test_refusal_is_audited_even_though_nothing_is_created(core: Pamcore, world: World) -> None:
    with pytest.raises(PolicyDenied):
        create(core, world.bob, request("Linux Admin", "web01"))
    with core.reader() as db:
        assert db.scalars(select(ActivitySession)).all() == []
        refused = db.scalars(select(AuditEvent).where(AuditEvent.action == "session.refused"))
        assert [e.actor for e in refused] == ["bob"]


@pytest.mark.parametrize(
    ("req", "field", "reason"),
    [
        (SessionRequest("Nope", ("db01",)), "activity", "no activity named 'Nope'"),
        (SessionRequest("Check out root", ()), "resources", "select at least one"),
        (SessionRequest("Check out root", ("db99",)), "resources", "no resource named 'db99'"),
        (SessionRequest("Check out root", ("db01",), notes="x" * 4001), "notes", "at most"),
        (SessionRequest("Check out root", ("db01",), ticket="T" * 65), "ticket", "at most"),
    ],
)
def test_validation_names_field_and_reason(
    core: Pamcore, world: World, req: SessionRequest, field: str, reason: str
) -> None:
    with pytest.raises(ValidationError) as err:
        create(core, world.alice, req)
    assert err.value.field == field
    assert reason in err.value.reason


def test_notes_and_ticket_required_by_profile(core: Pamcore, world: World) -> None:
    with core.unit() as db:
        profile = fresh(db, world.standard)
        profile.notes_required = True
        profile.ticket_required = True
    with pytest.raises(ValidationError) as err:
        create(core, world.alice, request())
    assert err.value.field == "notes"
    with pytest.raises(ValidationError) as err:
        create(core, world.alice, request(notes="patching"))
    assert err.value.field == "ticket"
    assert status(core, create(core, world.alice, request(notes="p", ticket="CHG1"))) == (
        Status.SCHEDULED
    )


def test_start_in_future_waits_until_due(core: Pamcore, world: World, clock: FrozenClock) -> None:
    start = clock.now + dt.timedelta(hours=4)
    sid = create(core, world.alice, request(start=start))
    assert scheduler.tick(core).activated == []
    clock.advance(hours=4)
    assert scheduler.tick(core).activated == [sid]


def test_start_rules(core: Pamcore, world: World, clock: FrozenClock) -> None:
    for start, reason in [
        (clock.now - dt.timedelta(hours=1), "in the past"),
        (clock.now + dt.timedelta(days=400), "one year"),
        (clock.now.replace(tzinfo=None), "time zone"),
    ]:
        with pytest.raises(ValidationError) as err:
            create(core, world.alice, request(start=start))
        assert err.value.field == "start" and reason in err.value.reason


def test_duplicate_open_session_refused(core: Pamcore, world: World) -> None:
    sid = create(core, world.alice, request())
    with pytest.raises(ValidationError, match=f"session #{sid} already covers"):
        create(core, world.alice, request())


def test_names_match_case_insensitively_and_dashes(core: Pamcore, world: World) -> None:
    sid = create(core, world.alice, SessionRequest("check-out_ROOT", ("DB01",)))
    assert status(core, sid) == Status.SCHEDULED


def test_cancel_before_start(core: Pamcore, world: World) -> None:
    sid = create(core, world.alice, request("Linux Admin", "web01"))
    with pytest.raises(PolicyDenied, match="only the requester or an administrator"):
        with core.unit() as db:
            cancel_session(core, db, fresh(db, world.bob), sid)
    with core.unit() as db:
        cancel_session(core, db, fresh(db, world.alice), sid, "not needed")
    assert status(core, sid) == Status.CANCELED


def test_cancel_available_runs_post_actions(core: Pamcore, world: World) -> None:
    with core.unit() as db:
        b.make_policy(
            db,
            "alice std",
            fresh(db, world.standard),
            [fresh(db, world.linux_admin)],
            [fresh(db, world.web02)],
            users=[fresh(db, world.alice)],
        )
    sid = create(core, world.alice, SessionRequest("Linux Admin", ("web02",)))
    # web02 is covered by two policies; the lowest id (approval) wins
    assert status(core, sid) == Status.WAITING_FOR_APPROVAL
    with core.unit() as db:
        approve_session(core, db, fresh(db, world.carol), sid)
    scheduler.tick(core)
    assert status(core, sid) == Status.AVAILABLE
    with core.unit() as db:
        cancel_session(core, db, fresh(db, world.erin), sid)
    assert status(core, sid) == Status.ENDING
    assert complete_ending(core, sid, worker_name(), "erin") == Status.CANCELED
    with core.reader() as db:
        s = db.get(ActivitySession, sid)
        assert s.status == Status.CANCELED
        assert s.login_secret_id is None  # the ephemeral password is gone with the account
        notes = [
            e.details.get("message")
            for e in db.scalars(
                select(AuditEvent).where(
                    AuditEvent.action == "action.note", AuditEvent.session_id == sid
                )
            )
        ]
    assert notes == ["create account", "remove account"]


def test_end_only_when_connectable(core: Pamcore, world: World) -> None:
    sid = create(core, world.alice, request("Linux Admin", "web01"))
    with pytest.raises(PolicyDenied, match="use cancel"), core.unit() as db:
        end_session(core, db, fresh(db, world.alice), sid)
    sid2 = available_session(core, world)
    with core.unit() as db:
        end_session(core, db, fresh(db, world.alice), sid2)
    assert status(core, sid2) == Status.ENDING
    assert complete_ending(core, sid2, "another-process", "alice") is None  # not its claim
    assert complete_ending(core, sid2, worker_name(), "alice") == Status.ENDED
    assert status(core, sid2) == Status.ENDED


def test_an_interrupted_ending_is_completed_by_the_scheduler(
    core: Pamcore, world: World, clock: FrozenClock
) -> None:
    """The process that began the ending died before the post-session actions ran: once
    its claim expires, the scheduler runs them and settles the outcome it asked for."""
    sid = available_session(core, world)
    with core.unit() as db:
        end_session(core, db, fresh(db, world.alice), sid)
    assert scheduler.tick(core).expired == []  # still claimed by this process
    clock.advance(minutes=11)
    assert scheduler.tick(core).expired == [sid]
    with core.reader() as db:
        s = db.get(ActivitySession, sid)
        assert (s.status, s.outcome_reason) == (Status.ENDED, "ended by alice")


def test_extension_window_and_limits(core: Pamcore, world: World, clock: FrozenClock) -> None:
    sid = available_session(core, world)

    def extend():
        with core.unit() as db:
            return extend_session(core, db, fresh(db, world.alice), sid)

    with pytest.raises(PolicyDenied, match="when 5 minutes or less remain .*60 minutes left"):
        extend()
    clock.advance(minutes=54, seconds=59)  # 5:01 left: still outside the window
    with pytest.raises(PolicyDenied, match="5 minutes or less"):
        extend()
    clock.advance(seconds=1)  # exactly 5:00 left: inside
    first = extend()
    assert first.new_end == clock.now + dt.timedelta(minutes=35)
    assert first.extensions_left == 1
    with pytest.raises(PolicyDenied, match="5 minutes or less"):
        extend()  # 35 minutes left again
    clock.advance(minutes=31)
    assert extend().extensions_left == 0
    clock.advance(minutes=31)
    with pytest.raises(PolicyDenied, match=r"no extensions left \(2 of 2 used\)"):
        extend()


def test_extension_disabled_by_profile(core: Pamcore, world: World, clock: FrozenClock) -> None:
    with core.unit() as db:
        obj = fresh(db, world.standard)
        obj.extension_enabled = False
    sid = available_session(core, world)
    clock.advance(minutes=58)
    with pytest.raises(PolicyDenied, match="does not allow extensions"), core.unit() as db:
        extend_session(core, db, fresh(db, world.alice), sid)


def test_extension_refused_when_not_available(core: Pamcore, world: World) -> None:
    sid = create(core, world.alice, request())
    with pytest.raises(PolicyDenied, match="only an Available or Active session"):
        with core.unit() as db:
            extend_session(core, db, fresh(db, world.alice), sid)


def test_list_scopes(core: Pamcore, world: World) -> None:
    mine = create(core, world.alice, request())
    bobs = create(core, world.bob, request())
    with core.reader() as db:
        assert [s.id for s in list_sessions(db, fresh(db, world.alice))] == [mine]
        assert {s.id for s in list_sessions(db, fresh(db, world.erin))} == {mine, bobs}
        assert list_sessions(db, fresh(db, world.alice), "history") == []
        with pytest.raises(ValidationError):
            list_sessions(db, fresh(db, world.alice), "bogus")


def test_direct_connect_reuses_or_creates(core: Pamcore, world: World) -> None:
    with core.unit() as db:
        first = find_or_request(core, db, fresh(db, world.alice), "linux-admin", "WEB01").id
    with core.unit() as db:
        again = find_or_request(core, db, fresh(db, world.alice), "Linux Admin", "web01").id
    assert first == again
    assert status(core, first) == Status.WAITING_FOR_APPROVAL


def test_parse_start_reads_what_people_and_scripts_type() -> None:
    from pamcore.services.sessions import parse_start

    assert parse_start(None) is None and parse_start(" Now ") is None
    assert parse_start("2026-12-01T14:00Z") == dt.datetime(2026, 12, 1, 14, 0, tzinfo=dt.UTC)
    for value, reason in [
        ("tomorrow", "is not a date and time"),
        (5, "is expected"),
        ("2026-12-01T14:00", "give a time zone"),
    ]:
        with pytest.raises(ValidationError, match=reason):
            parse_start(value)


@pytest.mark.parametrize(
    ("req", "field"),
    [
        (SessionRequest("Check\x00 out root", ("db01",)), "activity"),
        (SessionRequest("Check out root", ("db\x0001",)), "resources"),
        (SessionRequest("Check out root", ("db01",), notes="a\x00b"), "notes"),
        (SessionRequest("Check out root", ("db01",), ticket="CHG\x001"), "ticket"),
    ],
)
def test_nul_characters_are_a_clear_error_on_every_backend(
    core: Pamcore, world: World, req: SessionRequest, field: str
) -> None:
    """PostgreSQL refuses NUL in text; people never type it: refuse it by name, never a 500."""
    with pytest.raises(ValidationError) as err:
        create(core, world.alice, req)
    assert err.value.field == field
