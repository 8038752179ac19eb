"""A worker killed with ``kill -9`` in the middle of a batch: the next worker takes its claims
over at once and finishes every session, resuming after the actions the dead one recorded as
finished, so none of those runs again; each step is audited once (real ``pamcore worker``
processes, the test's own instance)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from pamcore.audit import verify_chain
from pamcore.cli.context import CliContext
from pamcore.cli.main import build_cli
from pamcore.core import Pamcore, open_core
from pamcore.lifecycle import Status
from pamcore.model import ActivitySession, AuditEvent
from pamcore.plugins import build_plugin_host
from pamcore.services import scheduler
from pamcore.testing import builders as b

PAMCORE = str(Path(sys.executable).parent / "pamcore")
SESSIONS = 20
#: How long each of the two pre-session steps sleeps: a kill mostly lands in a sleep.
STEP_SECONDS = 1.0

SLOW_STEPS = """
import time
from pathlib import Path

import pamcore
from pamcore.registry import ActionType

LOG = Path(__file__).parent / "steps.log"


def note(line):
    with LOG.open("a") as f:
        f.write(line + "\\n")


def run(ctx):
    step = ctx.params["step"]
    note(f"start {ctx.session.id} {step}")
    time.sleep(ctx.params["seconds"])
    note(f"done {ctx.session.id} {step}")
    ctx.audit("test.step", step=step)


@pamcore.hookimpl
def pamcore_register_actions(register):
    register(ActionType(name="slow-step", description="sleeps, then notes it", run=run))
"""


@pytest.fixture
def instance(tmp_path: Path, empty_db_url: str) -> Path:
    path = tmp_path / "instance"
    result = CliRunner().invoke(
        build_cli(),
        ["--instance", str(path), "init", "--database-url", empty_db_url],
        obj=CliContext(instance=None),
    )
    assert result.exit_code == 0, result.output
    (path / "plugins.d").mkdir()
    (path / "plugins.d" / "slow_steps.py").write_text(SLOW_STEPS)
    return path


def lines(instance: Path, kind: str) -> list[str]:
    """The ``session step`` of each line the slow steps noted as ``kind`` (start, done)."""
    log = instance / "plugins.d" / "steps.log"
    found = log.read_text().splitlines() if log.exists() else []
    return [line.removeprefix(f"{kind} ") for line in found if line.startswith(f"{kind} ")]


def wait_for(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def start_worker(instance: Path, name: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PAMCORE_PLUGINS_DIR": str(instance / "plugins.d")}
    with (instance / f"{name}.log").open("wb") as out:
        return subprocess.Popen(
            [PAMCORE, "--instance", str(instance), "worker", "--interval", "0.2"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def audited_steps(core: Pamcore) -> Counter[str]:
    with core.reader() as db:
        return Counter(
            f"{e.session_id} {e.details['step']}"
            for e in db.scalars(select(AuditEvent).where(AuditEvent.action == "test.step"))
        )


def statuses(core: Pamcore) -> Counter[str]:
    with core.reader() as db:
        return Counter(str(Status(s)) for s in db.scalars(select(ActivitySession.status)).all())


def test_killed_worker_mid_batch_is_taken_over_without_running_an_action_twice(
    instance: Path,
) -> None:
    core = open_core(instance, plugins=build_plugin_host(strict=True, entry_points=False))
    try:
        with core.unit() as db:
            alice = b.make_user(db, "alice")
            web01 = b.make_resource(db, "web01")
            steps = [("slow-step", {"step": n, "seconds": STEP_SECONDS}) for n in (1, 2)]
            activity = b.make_activity(
                db, "Slow", pre=steps, credential=b.make_credential(core, db, "root", "root")
            )
            profile = b.make_profile(db, "Standard")
            ids = b.make_sessions(db, SESSIONS, alice, activity, profile, [web01], core.now())

        first = start_worker(instance, "first")
        try:
            # Mid-batch: the first steps finished (and some of their sessions moved on to
            # step 2), the other sessions are claimed and waiting for a thread.
            wait_for(
                lambda: (
                    len(lines(instance, "done")) >= scheduler.PROVISION_THREADS
                    and bool(audited_steps(core))
                ),
                60,
                "the first wave of steps",
            )
            first.send_signal(signal.SIGKILL)
        finally:
            first.kill()
            first.wait(10)
        recorded = audited_steps(core)  # an action's record commits with its audit events
        interrupted = set(lines(instance, "start")) - set(lines(instance, "done"))
        assert recorded and interrupted
        assert statuses(core)[Status.PROVISIONING.value] == SESSIONS  # all claimed, none settled

        second = start_worker(instance, "second")
        try:
            wait_for(
                lambda: statuses(core)[Status.PROVISIONING.value] == 0, 90, "every session settled"
            )
        finally:
            second.terminate()
            second.wait(30)

        assert statuses(core) == {Status.AVAILABLE.value: SESSIONS}
        every_step = {f"{i} {n}" for i in ids for n in (1, 2)}
        started, done = Counter(lines(instance, "start")), Counter(lines(instance, "done"))
        assert set(done) == every_step
        assert {started[step] for step in recorded} == {1}, "a recorded action ran again"
        assert {started[step] for step in interrupted} == {2}  # cut short, so run again
        assert audited_steps(core) == Counter(every_step)  # once each, even those run again
        with core.reader() as db:
            available = db.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action == "session.available")
            )
            assert available == SESSIONS
            claimed = db.scalar(
                select(func.count())
                .select_from(ActivitySession)
                .where(ActivitySession.claimed_by.is_not(None))
            )
            assert claimed == 0
            assert verify_chain(db, core.audit_keys.keyring)[1] == []
    finally:
        core.dispose()
