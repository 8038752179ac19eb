"""What the plugin kits add to the core's services: the action kit's vault and audit calls
(each in a unit of its own) and the web kit's token key, against a real core."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import select

from pamcore.actionkit import (
    ACTOR,
    audit_details,
    find_credential,
    reveal_credential,
    store_new_secret,
)
from pamcore.core import Pamcore
from pamcore.errors import NotFound
from pamcore.model import ActivitySession, AuditEvent, Credential, LoginMode
from pamcore.registry import ActionContext
from pamcore.services import scheduler
from pamcore.services.sessions import SessionRequest, create_session
from pamcore.services.terminal_tokens import instance_secret, redeem_terminal_token
from pamcore.testing import builders as b
from pamcore.web.app import create_app
from pamcore.webkit import issue_token, token_secret
from tests.world import ROOT_PASSWORD, World, available_session, fresh

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n"


@contextmanager
def action_context(core: Pamcore, session_id: int, resource: str) -> Iterator[ActionContext]:
    """What the scheduler hands an action running for ``resource`` of the session."""
    with core.reader() as db:
        session = db.get(ActivitySession, session_id)
        assert session is not None
        (row,) = [r for r in session.resources if r.name == resource]
        yield ActionContext(
            core=core,
            session=session,
            resource=row,
            login_account="",
            login_password=None,
            params={},
            now=core.now(),
            audit=lambda action, **details: None,
        )


def test_find_credential_by_name_or_a_clear_refusal(core: Pamcore, world: World) -> None:
    with core.reader() as db:
        assert find_credential(db, "DB01 ROOT").id == world.root_cred.id
        with pytest.raises(NotFound, match="no credential named 'nope'"):
            find_credential(db, "nope")


def test_reveal_credential_gives_what_the_vault_holds(core: Pamcore, world: World) -> None:
    with core.unit() as db:
        key_only = b.make_credential(core, db, "db01 deploy", "deploy", private_key=KEY).id
    assert reveal_credential(core, world.root_cred.id) == (ROOT_PASSWORD, None)
    assert reveal_credential(core, key_only) == (None, KEY)
    with pytest.raises(NotFound, match=f"credential #{key_only + 1} no longer exists"):
        reveal_credential(core, key_only + 1)


@pytest.mark.parametrize("had_password", [True, False])
def test_store_new_secret_vaults_it_with_its_audit_event(
    core: Pamcore, world: World, had_password: bool
) -> None:
    sid = available_session(core, world)
    if had_password:
        credential_id = world.root_cred.id
    else:
        with core.unit() as db:
            db01 = fresh(db, world.db01)
            credential_id = b.make_credential(
                core, db, "db01 deploy", "deploy", private_key=KEY, resource=db01
            ).id
    with action_context(core, sid, "db01") as ctx:
        store_new_secret(ctx, credential_id, "New-S3cret-value")
        rotated = ctx.now
    assert reveal_credential(core, credential_id)[0] == "New-S3cret-value"
    with core.reader() as db:
        credential = db.get(Credential, credential_id)
        assert credential is not None and credential.rotated_at == rotated
        (event,) = db.scalars(
            select(AuditEvent).where(AuditEvent.action == "credential.rotated")
        ).all()
        assert (event.actor, event.target, event.session_id) == (ACTOR, "db01", sid)
        assert event.details["credential"] == credential.name
        assert "New-S3cret-value" not in str(event.details)


def test_store_new_secret_for_a_deleted_credential_changes_nothing(
    core: Pamcore, world: World
) -> None:
    sid = available_session(core, world)
    with action_context(core, sid, "db01") as ctx, pytest.raises(NotFound):
        store_new_secret(ctx, world.root_cred.id + 99, "New-S3cret-value")
    with core.reader() as db:
        assert not db.scalars(
            select(AuditEvent).where(AuditEvent.action == "credential.rotated")
        ).all()


def test_audit_details_reads_what_earlier_actions_recorded(core: Pamcore, world: World) -> None:
    """Events of this session's actions on this resource, newest first; not another
    resource's, another session's, nor anyone else's event of the same name."""
    with core.unit() as db:
        notes = b.make_activity(
            db,
            "Notes",
            login_mode=LoginMode.EPHEMERAL,
            pre=[("audit-note", {"message": "first"}), ("audit-note", {"message": "second"})],
        )
        b.make_policy(
            db,
            "notes",
            fresh(db, world.standard),
            [notes],
            [fresh(db, world.web01), fresh(db, world.web02)],
            users=[fresh(db, world.alice), fresh(db, world.bob)],
        )
    sids = []
    for user, resources in ((world.alice, ("web01", "web02")), (world.bob, ("web01",))):
        with core.unit() as db:
            request = SessionRequest("Notes", resources)
            sids.append(create_session(core, db, fresh(db, user), request).id)
    with core.unit() as db:
        core.audit(db, "erin", "action.note", target="web01", session_id=sids[0], message="x")
    scheduler.tick(core)
    with action_context(core, sids[0], "web01") as ctx:
        assert [d["message"] for d in audit_details(ctx, "action.note")] == ["second", "first"]
        assert audit_details(ctx, "linux.account_created") == []
    with core.unit() as db:
        core.audit(db, ACTOR, "action.note", target="web02", session_id=sids[0], message="late")
    with action_context(core, sids[0], "web02") as ctx:
        assert [d["message"] for d in audit_details(ctx, "action.note")] == [
            "late",
            "second",
            "first",
        ]


def test_token_secret_is_the_key_the_listeners_verify_with(core: Pamcore, world: World) -> None:
    """A token the dashboard signs with ``token_secret()`` redeems with the instance's
    secret key, which is all a listener process has."""
    assert core.config.secret_key_path is not None
    core.config.secret_key_path.write_text("instance-secret-for-kits\n")
    sid = available_session(core, world)
    app = create_app(core, {"TESTING": True})
    with app.app_context(), core.reader() as db:
        token = issue_token(core, db, fresh(db, world.alice), sid, "db01", "ssh", token_secret())
    secret = instance_secret(core)
    assert secret == "instance-secret-for-kits"
    with core.reader() as db:
        granted = redeem_terminal_token(core, db, token, "ssh", secret)
    assert (granted.user_id, granted.session_id, granted.resource_name) == (
        world.alice.id,
        sid,
        "db01",
    )
