"""The sessions, audit and vault commands: thin, one clear line on error, JSON for scripts."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, update

from pamcore.cli.context import CliContext
from pamcore.cli.main import build_cli
from pamcore.clock import FrozenClock
from pamcore.core import Pamcore
from pamcore.model import AuditEvent
from tests.world import ROOT_PASSWORD, World


@pytest.fixture
def run(core: Pamcore):
    cli = build_cli()

    def invoke(*args: str, code: int = 0, input: str | None = None):
        obj = CliContext(instance=None)
        obj.set_core(core)
        result = CliRunner().invoke(cli, list(args), obj=obj, input=input)
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output
        return result.output

    return invoke


def test_request_approve_due_reveal_end(run, world: World, clock: FrozenClock) -> None:
    out = run(
        "sessions",
        "create",
        "--as",
        "alice",
        "--activity",
        "linux-admin",
        "--resource",
        "web01",
        "--notes",
        "patch openssl",
    )
    assert out.strip() == (
        "session #1 created: Waiting for Approval (waiting for the Linux Admins group)"
    )
    queue = run("sessions", "queue", "--as", "carol").splitlines()
    assert queue[0].split() == [
        "ID",
        "ACTIVITY",
        "RESOURCES",
        "REQUESTER",
        "CURRENT_TIER",
        "TICKET",
        "NOTES",
        "SCHEDULED_START",
    ]
    assert queue[1].split() == [
        "1",
        "Linux",
        "Admin",
        "web01",
        "alice",
        "1",
        "patch",
        "openssl",
        "2026-11-28T10:00:00Z",
    ]
    assert run("sessions", "queue", "--as", "dave") != run("sessions", "queue", "--as", "erin")
    assert run("sessions", "approve", "1", "--as", "carol", "--comment", "ok").strip() == (
        "session #1 approved: now Scheduled"
    )
    data = json.loads(run("--json", "sessions", "show", "1", "--as", "alice"))
    assert data["status"] == "scheduled"
    assert data["approvals"][0]["approver"] == "carol"


def test_errors_are_one_line_with_exit_codes(run, world: World) -> None:
    out = run(
        "sessions",
        "create",
        "--as",
        "bob",
        "--activity",
        "Linux Admin",
        "--resource",
        "web01",
        code=4,
    )
    assert out == "error: no access policy grants bob the activity 'Linux Admin' on web01\n"
    out = run(
        "sessions", "create", "--as", "alice", "--activity", "Nope", "--resource", "web01", code=2
    )
    assert out == "error: activity: no activity named 'Nope'\n"
    out = run(
        "sessions",
        "create",
        "--as",
        "alice",
        "--activity",
        "Linux Admin",
        "--resource",
        "web01",
        "--start",
        "tomorrow",
        code=2,
    )
    assert "is not a date and time" in out
    assert run("sessions", "show", "99", code=3) == "error: no activity session #99\n"
    assert run("sessions", "approve", "1", "--as", "nobody", code=3) == (
        "error: no user named 'nobody'\n"
    )


def test_password_extend_end_and_audit(run, world: World, core: Pamcore, clock) -> None:
    from pamcore.services import scheduler

    run("sessions", "create", "--as", "alice", "--activity", "Check out root", "--resource", "db01")
    scheduler.tick(core)
    # piped (not a terminal): printed once, for scripts
    assert run("sessions", "password", "1", "--as", "alice").strip() == ROOT_PASSWORD
    out = json.loads(run("--json", "sessions", "password", "1", "--as", "alice"))
    assert (out["password"], out["seconds"], out["username"]) == (ROOT_PASSWORD, 20, "root")
    assert "you can extend when 5 minutes or less remain" in run(
        "sessions", "extend", "1", "--as", "alice", code=4
    )
    clock.advance(minutes=56)
    assert run("sessions", "extend", "1", "--as", "alice").strip() == (
        "session #1 extended until 2026-11-28 11:30 UTC; 1 extension(s) left"
    )
    assert run("sessions", "end", "1", "--as", "alice").strip() == (
        "session #1 ended (ended by alice)"
    )
    listing = run("sessions", "list", "--view", "history")
    assert "Ended" in listing and "Check out root" in listing
    events = run("audit", "list", "--session", "1", "--limit", "100")
    assert ROOT_PASSWORD not in events
    assert "password.revealed" in events and "session.extended" in events
    assert run("audit", "verify").startswith("audit chain intact:")


def test_audit_verify_reports_tampering(run, world: World, core: Pamcore) -> None:
    run("sessions", "create", "--as", "alice", "--activity", "Check out root", "--resource", "db01")
    with core.unit() as db:
        db.execute(update(AuditEvent).where(AuditEvent.id == 1).values(actor="mallory"))
    out = run("audit", "verify", code=8)
    assert "BROKEN event 1: content edited (action 'session.requested')" in out
    assert "the log was tampered with" in out


def test_audit_anchor_verify_and_rotate_key(run, world: World, core: Pamcore) -> None:
    run("sessions", "create", "--as", "alice", "--activity", "Check out root", "--resource", "db01")
    line = run("audit", "anchor").strip()
    assert line.startswith("pamcore-audit-anchor event=1 hash=") and "\n" not in line
    as_json = json.loads(run("--json", "audit", "anchor"))
    assert (as_json["anchor"], as_json["event"]) == (line, 1)
    assert "| logger" in run("audit", "anchor", "--help")
    out = run("audit", "rotate-key")
    assert "audit key rotated to " in out and str(core.config.audit_key_path) in out
    assert run("audit", "verify", "--anchor", line).startswith("audit chain intact: 2 events")
    with core.unit() as db:
        db.execute(delete(AuditEvent).where(AuditEvent.id == 1))
    out = run("audit", "verify", "--anchor", line, code=8)
    assert "BROKEN event 1: the anchored event is gone (chain cut after it)" in out
    assert "anchor: expected the line" in run("audit", "verify", "--anchor", "junk", code=2)


def test_vault_rotate_and_retire(run, world: World, core: Pamcore, clock) -> None:
    old = core.vault.active.key_id
    out = run("vault", "rotate-key", "--yes")
    assert "master key rotated to " in out and f"retire the old key ({old})" in out
    status = json.loads(run("--json", "vault", "status"))
    keys = {k["key"]: k for k in status["keys"]}
    new = next(k for k, v in keys.items() if v["active"] == "yes")
    assert new != old and keys[old]["secrets"] == 0 and keys[new]["secrets"] > 0
    assert status["undecryptable"] == []
    assert "may still write with it" in run("vault", "retire-key", old, code=4)
    clock.advance(minutes=6)
    assert f"key {old} retired" in run("vault", "retire-key", old)
    assert [k["key"] for k in json.loads(run("--json", "vault", "status"))["keys"]] == [new]
