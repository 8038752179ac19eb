"""The demo seed: built through the services, idempotent, and the README tour works on it."""

from __future__ import annotations

import json

from click.testing import CliRunner
from sqlalchemy import select

from pamcore.cli.context import CliContext
from pamcore.cli.main import build_cli
from pamcore.core import Pamcore
from pamcore.demo import DEMO_PASSWORD, seed_demo
from pamcore.lifecycle import Status
from pamcore.model import AuditEvent, User
from pamcore.passwords import MIN_LENGTH
from pamcore.services import scheduler
from pamcore.services.approvals import approve_session
from pamcore.services.common import get_session
from pamcore.services.directory import authenticate
from pamcore.services.sessions import SessionRequest, create_session


def _user(db, name: str) -> User:  # type: ignore[no-untyped-def]
    return db.scalar(select(User).where(User.username == name))


def test_alice_linux_admin_tour(core: Pamcore) -> None:
    summary = seed_demo(core)
    assert summary.seeded and len(DEMO_PASSWORD) >= MIN_LENGTH
    assert DEMO_PASSWORD not in repr(summary)
    with core.unit() as db:
        alice = authenticate(core, db, "alice", DEMO_PASSWORD)
        session = create_session(
            core, db, alice, SessionRequest("Linux Admin", ("web01",), notes="patching")
        )
        assert session.status == Status.WAITING_FOR_APPROVAL
        session_id = session.id
    with core.unit() as db:
        approve_session(core, db, _user(db, "carol"), session_id)
    scheduler.tick(core)
    with core.reader() as db:
        session = get_session(db, session_id)
        assert session.status == Status.AVAILABLE
        assert session.login_account.startswith("pamdemo-alice-")
        notes = db.scalars(select(AuditEvent).where(AuditEvent.action == "action.note")).all()
        assert [e.details["message"] for e in notes] == ["create ephemeral account"]


def test_bob_two_tier_needs_notes_and_ticket(core: Pamcore) -> None:
    seed_demo(core)
    with core.unit() as db:
        bob = _user(db, "bob")
        session = create_session(
            core,
            db,
            bob,
            SessionRequest("Network Admin", ("core-sw1",), notes="VLAN change", ticket="CHG-1"),
        )
        session_id = session.id
    with core.unit() as db:
        approve_session(core, db, _user(db, "dave"), session_id)
    with core.unit() as db:
        session = approve_session(core, db, _user(db, "carol"), session_id)
        assert session.status == Status.SCHEDULED


def test_seed_is_idempotent_and_cli_says_so(core: Pamcore) -> None:
    cli = build_cli()

    def run(*args: str):  # type: ignore[no-untyped-def]
        obj = CliContext(instance=None)
        obj.set_core(core)
        result = CliRunner().invoke(cli, list(args), obj=obj)
        assert result.exit_code == 0, result.output
        return result.output

    first = run("demo")
    assert DEMO_PASSWORD in first and "demo only" in first
    second = json.loads(run("--json", "demo"))
    assert "already there" in second["message"]
    with core.reader() as db:
        assert len(db.scalars(select(User)).all()) == 6


def test_demo_never_seeds_an_instance_with_real_users(core: Pamcore) -> None:
    from pamcore.testing import builders as b

    with core.unit() as db:
        b.make_user(db, "operator")
    summary = seed_demo(core)
    assert not summary.seeded
    assert summary.reason == "this instance already has users; the demo only seeds an empty one"
    with core.reader() as db:
        assert [u.username for u in db.scalars(select(User))] == ["operator"]
