"""API tokens: issued once, stored hashed, expiring, revocable, owner-or-admin only."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from pamcore.cli.context import CliContext
from pamcore.cli.main import build_cli
from pamcore.clock import FrozenClock
from pamcore.core import Pamcore
from pamcore.errors import AuthenticationFailed, NotFound, PolicyDenied, ValidationError
from pamcore.model import ApiToken, AuditEvent, User
from pamcore.services import tokens
from pamcore.services.common import CONSOLE
from tests.world import World, fresh


def _issue(
    core: Pamcore, actor: User, username: str = "alice", name: str = "script", **kw: Any
) -> tokens.IssuedToken:
    with core.unit() as db:
        return tokens.create_token(core, db, fresh(db, actor), username, name, **kw)


def test_token_is_shown_once_and_stored_hashed(core: Pamcore, world: World) -> None:
    issued = _issue(core, world.alice)
    assert issued.token.startswith("pam_") and len(issued.token) > 40
    assert issued.token not in repr(issued)
    with core.reader() as db:
        row = db.scalar(select(ApiToken))
        assert row.token_hash == tokens.hash_token(issued.token)
        assert issued.token.startswith(row.prefix) and len(row.prefix) == 12
        events = db.scalars(select(AuditEvent).where(AuditEvent.action == "token.created")).all()
        assert issued.token not in json.dumps([e.details for e in events])
    with core.unit() as db:
        user = tokens.authenticate_token(core, db, issued.token)
        assert user.username == "alice"
    with core.reader() as db:
        assert db.scalar(select(ApiToken)).last_used_at == core.now()


def test_wrong_expired_and_revoked_tokens_are_refused(
    core: Pamcore, world: World, clock: FrozenClock
) -> None:
    with core.unit() as db, pytest.raises(AuthenticationFailed, match="invalid API token"):
        tokens.authenticate_token(core, db, "pam_nope")
    issued = _issue(core, world.alice, expires_at=core.now() + dt.timedelta(hours=1))
    clock.advance(hours=2)
    with core.unit() as db, pytest.raises(AuthenticationFailed, match="expired at"):
        tokens.authenticate_token(core, db, issued.token)
    other = _issue(core, world.erin, name="ops")
    with core.unit() as db:
        tokens.revoke_token(core, db, CONSOLE, "alice", other.record.id)
    with core.unit() as db, pytest.raises(AuthenticationFailed):
        tokens.authenticate_token(core, db, other.token)


def test_only_owner_or_admin_manage_tokens(core: Pamcore, world: World) -> None:
    with pytest.raises(PolicyDenied, match="only alice or an administrator"):
        _issue(core, world.bob, "alice")
    issued = _issue(core, world.erin, "alice")
    with core.reader() as db:
        assert [t.name for t in tokens.list_tokens(db, fresh(db, world.alice), "alice")] == [
            "script"
        ]
        with pytest.raises(PolicyDenied):
            tokens.list_tokens(db, fresh(db, world.bob), "alice")
    with core.unit() as db, pytest.raises(NotFound):
        tokens.revoke_token(core, db, fresh(db, world.bob), "bob", issued.record.id)
    with pytest.raises(ValidationError, match="already has a token named"):
        _issue(core, world.alice)
    with pytest.raises(ValidationError, match="in the past"):
        _issue(core, world.alice, name="old", expires_at=core.now() - dt.timedelta(seconds=1))


def test_disabled_user_token_is_refused(core: Pamcore, world: World) -> None:
    issued = _issue(core, world.alice)
    with core.unit() as db:
        fresh(db, world.alice).is_active = False
    with core.unit() as db, pytest.raises(AuthenticationFailed, match="invalid API token"):
        tokens.authenticate_token(core, db, issued.token)


def test_cli_token_commands(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    cli = build_cli()

    def run(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(
            cli, ["--instance", str(instance), *args], obj=CliContext(instance=None)
        )
        assert result.exit_code == code, (args, result.output, result.exception)
        return result.output

    run("init")
    run("users", "create", "alice")
    created = json.loads(run("users", "token", "create", "alice", "--name", "ci", "--json"))
    assert created["token"].startswith(created["prefix"])
    plain = run("users", "token", "create", "alice", "--name", "deploy", "--expires-days", "7")
    assert "shown once" in plain
    listed = json.loads(run("users", "token", "list", "alice", "--json"))
    assert [(t["name"], t["expires_at"] is None) for t in listed] == [
        ("ci", True),
        ("deploy", False),
    ]
    assert created["token"] not in run("users", "token", "list", "alice")
    run("users", "token", "revoke", "alice", str(created["id"]))
    assert "no API token #" in run("users", "token", "revoke", "alice", "999", code=3)
