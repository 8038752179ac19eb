"""The scheduler: activation, expiry, failures, catch-up after downtime, several workers."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from pamcore import hookimpl
from pamcore.clock import FrozenClock
from pamcore.core import Pamcore
from pamcore.errors import ActionFailed
from pamcore.lifecycle import Status
from pamcore.model import (
    AccessPolicy,
    ActionPhase,
    ActivitySession,
    AuditEvent,
    CompletedAction,
    LoginMode,
    User,
)
from pamcore.registry import ActionContext, ActionType
from pamcore.services import claims, scheduler
from pamcore.services.actions import ActionRecord, ActionRecords
from pamcore.services.common import this_host
from pamcore.services.sessions import SessionRequest, create_session
from pamcore.testing import builders as b
from tests.world import World, fresh


class Recorder:
    """A plugin with real action types that record each call (and can be told to fail)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.fail_on: set[str] = set()
        self.lock = threading.Lock()

    def _runner(self, name: str) -> Callable[[ActionContext], None]:
        def run(ctx: ActionContext) -> None:
            with self.lock:
                self.calls.append((name, ctx.resource.name, ctx.login_account))
            if name in self.fail_on:
                raise ActionFailed(f"{name} refused by {ctx.resource.name}")

        return run

    @hookimpl
    def pamcore_register_actions(self, register):
        for name in ("create-account", "remove-account"):
            register(ActionType(name=name, description=name, run=self._runner(name)))


@pytest.fixture
def recorder(core: Pamcore, world: World):
    rec = Recorder()
    name = core.plugins.register(rec, "recorder")
    with core.unit() as db:
        activity = b.make_activity(
            db,
            "Ephemeral",
            login_mode=LoginMode.EPHEMERAL,
            pre=[("create-account", {})],
            post=[("remove-account", {})],
        )
        b.make_policy(
            db,
            "ephemeral",
            fresh(db, world.standard),
            [activity],
            [fresh(db, world.web01), fresh(db, world.web02)],
            users=[fresh(db, world.alice), fresh(db, world.bob)],
        )
    yield rec
    core.plugins.unregister(name)


def request(core: Pamcore, user, start: dt.datetime | None = None, *resources: str) -> int:
    with core.unit() as db:
        req = SessionRequest("Ephemeral", resources or ("web01", "web02"), start=start)
        return create_session(core, db, fresh(db, user), req).id


def provision_with(
    core: Pamcore, world: World, action: str, run: Callable[[ActionContext], None]
) -> Status:
    """Provision one session of alice's on web01 whose only pre-session action is ``run``;
    the status the scheduler's tick left it in."""

    class OneAction:
        @hookimpl
        def pamcore_register_actions(self, register):
            register(ActionType(name=action, description=action, run=run))

    name = core.plugins.register(OneAction(), action)
    try:
        with core.unit() as db:
            activity = b.make_activity(
                db, action.title(), pre=[(action, {})], credential=fresh(db, world.root_cred)
            )
            b.make_policy(
                db,
                action,
                fresh(db, world.standard),
                [activity],
                [fresh(db, world.web01)],
                users=[fresh(db, world.alice)],
            )
            req = SessionRequest(action.title(), ("web01",))
            sid = create_session(core, db, fresh(db, world.alice), req).id
        scheduler.tick(core)
        return session_state(core, sid)[0]
    finally:
        core.plugins.unregister(name)


def claimed(core: Pamcore, sid: int, owner: str) -> None:
    """Put a session in provisioning under ``owner``'s claim, beating now."""
    with core.unit() as db:
        session = db.get(ActivitySession, sid)
        session.status = Status.PROVISIONING
        claims.stake(session, owner, core.now())


def session_state(core: Pamcore, sid: int) -> tuple[Status, str]:
    with core.reader() as db:
        s = db.get(ActivitySession, sid)
        return Status(s.status), s.outcome_reason


def test_pre_actions_per_resource_then_available(
    core: Pamcore, world: World, recorder: Recorder
) -> None:
    sid = request(core, world.alice)
    assert scheduler.tick(core).activated == [sid]
    account = recorder.calls[0][2]
    assert recorder.calls == [
        ("create-account", "web01", account),
        ("create-account", "web02", account),
    ]
    assert account.startswith("alice-")


def test_expiry_runs_post_actions(
    core: Pamcore, world: World, recorder: Recorder, clock: FrozenClock
) -> None:
    sid = request(core, world.alice)
    scheduler.tick(core)
    clock.advance(minutes=59, seconds=59)
    assert scheduler.tick(core).expired == []
    clock.advance(seconds=1)
    assert scheduler.tick(core).expired == [sid]
    assert [c[0] for c in recorder.calls] == ["create-account"] * 2 + ["remove-account"] * 2
    status, reason = session_state(core, sid)
    assert status == Status.EXPIRED and reason == "end time 11:00 UTC reached"
    assert scheduler.tick(core).expired == []  # idempotent


def test_pre_action_failure_cleans_up_and_fails(
    core: Pamcore, world: World, recorder: Recorder
) -> None:
    recorder.fail_on = {"create-account"}
    sid = request(core, world.alice)
    assert scheduler.tick(core).failed == [sid]
    status, reason = session_state(core, sid)
    assert status == Status.FAILED
    assert reason == (
        "pre-session action 'create-account' failed on web01: create-account refused by web01"
    )
    # best-effort cleanup ran the post actions on every resource
    assert [c[0] for c in recorder.calls] == ["create-account", "remove-account", "remove-account"]


def test_post_action_failure_marks_failed(
    core: Pamcore, world: World, recorder: Recorder, clock: FrozenClock
) -> None:
    sid = request(core, world.alice)
    scheduler.tick(core)
    recorder.fail_on = {"remove-account"}
    clock.advance(hours=2)
    assert scheduler.tick(core).failed == [sid]
    assert session_state(core, sid)[0] == Status.FAILED


def test_missing_action_type_fails_clearly(core: Pamcore, world: World) -> None:
    with core.unit() as db:
        activity = b.make_activity(
            db, "Broken", pre=[("no-such-action", {})], credential=fresh(db, world.root_cred)
        )
        b.make_policy(
            db,
            "broken",
            fresh(db, world.standard),
            [activity],
            [fresh(db, world.web01)],
            users=[fresh(db, world.alice)],
        )
        sid = create_session(
            core, db, fresh(db, world.alice), SessionRequest("Broken", ("web01",))
        ).id
    scheduler.tick(core)
    status, reason = session_state(core, sid)
    assert status == Status.FAILED
    assert "action type 'no-such-action' is not installed" in reason


def test_catch_up_after_downtime(
    core: Pamcore, world: World, recorder: Recorder, clock: FrozenClock
) -> None:
    late = request(core, world.alice, clock.now + dt.timedelta(minutes=10), "web01")
    missed = request(core, world.bob, clock.now + dt.timedelta(minutes=5), "web02")
    clock.advance(minutes=65)  # the scheduler was down; bob's whole window (5..65) passed
    report = scheduler.tick(core)
    assert report.activated == [late]
    assert report.missed == [missed]
    with core.reader() as db:
        s = db.get(ActivitySession, late)
        # the approved window is kept: it ends 60 minutes after its scheduled start
        assert s.ends_at == s.scheduled_start + dt.timedelta(minutes=60)
        lag = db.scalar(select(AuditEvent.details).where(AuditEvent.action == "session.available"))
        assert lag["lag_seconds"] == 55 * 60
    assert session_state(core, missed) == (
        Status.CANCELED,
        "its window ended at 11:05 UTC before the scheduler could start it",
    )


def test_stale_provisioning_claim_is_recovered(
    core: Pamcore, world: World, recorder: Recorder, clock: FrozenClock
) -> None:
    sid = request(core, world.alice)
    claimed(core, sid, "other-host:4242:0badc0de")  # a worker claimed it, then died
    assert scheduler.tick(core).activated == []
    clock.advance(seconds=core.config.claim_timeout - 1)
    assert scheduler.tick(core).activated == []  # its owner may still be working
    clock.advance(seconds=2)
    assert scheduler.tick(core).activated == [sid]


def test_a_working_owners_heartbeat_keeps_its_claim(
    core: Pamcore, world: World, recorder: Recorder, clock: FrozenClock
) -> None:
    sid = request(core, world.alice)
    claimed(core, sid, "busy-worker")
    clock.advance(seconds=25)
    assert claims.beat(core, "busy-worker") == 1
    clock.advance(seconds=25)  # 50 s after the claim, 25 s after the last beat
    assert scheduler.tick(core).activated == []
    clock.advance(seconds=6)
    assert scheduler.tick(core).activated == [sid]


def test_claims_beat_while_actions_run(core: Pamcore, world: World, clock: FrozenClock) -> None:
    """An action longer than the claim timeout keeps its claim: the heartbeat moves on."""
    core.config = core.config.with_overrides(claim_timeout=0.3)  # a beat every 0.1 s

    def long_action(ctx: ActionContext) -> None:
        clock.advance(seconds=20)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with core.reader() as db:
                session = db.get(ActivitySession, ctx.session.id)
                if session.claim_heartbeat_at == clock.now:
                    return
            time.sleep(0.05)
        raise ActionFailed("the claim's heartbeat stood still while the action ran")

    assert provision_with(core, world, "long", long_action) == Status.AVAILABLE


def test_a_dead_owner_on_this_host_is_taken_over_at_once(
    core: Pamcore, world: World, recorder: Recorder
) -> None:
    """A restarted process resumes its predecessor's claims at the first tick."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    alive, dead = request(core, world.alice, None, "web01"), request(core, world.bob, None, "web01")
    for sid, pid in ((alive, os.getpid()), (dead, gone.pid)):
        claimed(core, sid, f"{this_host()}:{pid}:0badc0de")
    assert scheduler.tick(core).activated == [dead]


def test_a_takeover_resumes_after_the_finished_actions(
    core: Pamcore, world: World, recorder: Recorder, clock: FrozenClock
) -> None:
    """The dead owner created the account on web01 (and recorded it): only web02 is left."""
    sid = request(core, world.alice)
    claimed(core, sid, "other-host:4242:0badc0de")
    with core.unit() as db:
        s = db.get(ActivitySession, sid)
        s.login_account = "alice-0a1b2c"
        s.login_secret = core.vault.store(db, "Ephemeral-pw-1")
        create = s.activity.actions_for(ActionPhase.PRE)[0]
        db.add(CompletedAction(session_id=sid, resource_id=world.web01.id, action_id=create.id))
    clock.advance(seconds=core.config.claim_timeout + 1)
    assert scheduler.tick(core).activated == [sid]
    assert recorder.calls == [("create-account", "web02", "alice-0a1b2c")]


def test_action_records_share_units_and_fail_alone(
    core: Pamcore, world: World, recorder: Recorder
) -> None:
    """Eight threads' records commit (in shared units); a record that cannot be written (the
    same action recorded twice) fails only the thread that wrote it."""
    sid = request(core, world.alice, None, "web01")
    errors: list[Exception] = []

    def finish(resource_id: int) -> None:
        record = ActionRecord(sid, resource_id, "web01", [("test.step", {"n": resource_id})], 1)
        try:
            records.write(record)
        except IntegrityError as exc:
            errors.append(exc)

    with ActionRecords(core) as records:
        threads = [threading.Thread(target=finish, args=(n % 8,)) for n in range(9)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert len(errors) == 1
    with core.reader() as db:
        done = db.scalars(
            select(CompletedAction.resource_id).where(CompletedAction.session_id == sid)
        )
        assert sorted(done) == list(range(8))
        steps = db.scalars(select(AuditEvent.details).where(AuditEvent.action == "test.step"))
        assert sorted(d["n"] for d in steps) == list(range(8))


def test_two_workers_never_run_the_same_session(
    core: Pamcore, world: World, recorder: Recorder
) -> None:
    with core.unit() as db:
        users = [b.make_user(db, f"user{i}") for i in range(12)]
        policy = db.scalar(select(AccessPolicy).where(AccessPolicy.name == "ephemeral"))
        policy.users.extend(users)
    sids = [request(core, u, None, "web01") for u in users]
    reports: list[scheduler.TickReport] = []
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            reports.append(scheduler.tick(core, worker=name, batch=4))
            reports.append(scheduler.tick(core, worker=name, batch=4))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    while scheduler.tick(core).activated:
        pass
    activated = Counter(s for r in reports for s in r.activated)
    assert all(n == 1 for n in activated.values())
    creates = Counter(c[2] for c in recorder.calls if c[0] == "create-account")
    assert all(n == 1 for n in creates.values()), creates
    with core.reader() as db:
        assert db.scalar(
            select(func.count())
            .select_from(ActivitySession)
            .where(ActivitySession.id.in_(sids), ActivitySession.status == Status.AVAILABLE.value)
        ) == len(sids)
        assert db.scalar(select(func.count()).select_from(User)) >= 12


def test_actions_run_outside_the_write_transaction(core: Pamcore, world: World) -> None:
    """While a pre-session action waits on the network, others can still write: the action
    below only finishes if another thread commits a unit of work in the meantime."""
    wrote = threading.Event()

    def slow_action(ctx: ActionContext) -> None:
        def other_writer() -> None:
            with core.unit() as db:
                core.audit(db, "bob", "test.concurrent_write")
            wrote.set()

        thread = threading.Thread(target=other_writer)
        thread.start()
        thread.join(10)
        if not wrote.is_set():
            raise ActionFailed("another writer was blocked during the action")

    assert provision_with(core, world, "slow", slow_action) == Status.AVAILABLE


def test_sessions_are_provisioned_in_parallel(
    core: Pamcore, world: World, recorder: Recorder
) -> None:
    """Three sessions' actions meet at a barrier: only possible if they run at once."""
    barrier = threading.Barrier(3, timeout=10)
    original = recorder._runner

    def meeting(name: str) -> Callable[[ActionContext], None]:
        inner = original(name)

        def run(ctx: ActionContext) -> None:
            if name == "create-account":
                barrier.wait()
            inner(ctx)

        return run

    recorder._runner = meeting  # type: ignore[method-assign]
    core.plugins.unregister("recorder")
    core.plugins.register(recorder, "recorder")
    with core.unit() as db:
        users = [fresh(db, world.alice), fresh(db, world.bob), b.make_user(db, "carl")]
        policy = db.scalar(select(AccessPolicy).where(AccessPolicy.name == "ephemeral"))
        policy.users.append(users[2])
    sids = [request(core, u, None, "web01") for u in (world.alice, world.bob, users[2])]
    assert sorted(scheduler.tick(core).activated) == sorted(sids)


def test_activity_without_login_credential_fails_clearly(core: Pamcore, world: World) -> None:
    """Caught at provisioning (admin services refuse it earlier; this is the last line)."""
    with core.unit() as db:
        activity = b.make_activity(db, "No credential")  # managed login, no credential
        b.make_policy(
            db,
            "nocred",
            fresh(db, world.standard),
            [activity],
            [fresh(db, world.web01)],
            users=[fresh(db, world.alice)],
        )
        sid = create_session(
            core, db, fresh(db, world.alice), SessionRequest("No credential", ("web01",))
        ).id
    assert scheduler.tick(core).failed == [sid]
    assert session_state(core, sid) == (
        Status.FAILED,
        "activity 'No credential' has no login credential; an administrator must set one",
    )
