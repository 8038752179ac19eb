"""Users, groups and sign-in through the directory service."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from pamcore.core import Pamcore
from pamcore.errors import AuthenticationFailed, NotFound, PolicyDenied, ValidationError
from pamcore.model import AuditEvent, Role
from pamcore.passwords import MAX_FAILURES
from pamcore.presenters import group_record, user_record
from pamcore.services import directory as d
from pamcore.services.common import CONSOLE
from pamcore.testing import builders as b

PASSWORD = "correct-horse-battery"


def test_create_user_audits_and_hashes(core: Pamcore) -> None:
    with core.unit() as db:
        d.create_user(core, db, CONSOLE, "alice", role=Role.APPROVER, password=PASSWORD)
    with core.reader() as db:
        user = d.get_user(db, "ALICE")
        assert user.role == Role.APPROVER
        assert user.password_hash and PASSWORD not in user.password_hash
        event = db.scalar(select(AuditEvent).where(AuditEvent.action == "user.created"))
        assert event is not None
        assert event.actor == "system:cli" and event.target == "alice"
        assert PASSWORD not in str(event.details)


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("alice+admin", "DirectConnect"),
        ("bob@pam", "DirectConnect"),
        ("Alice", "lowercase"),
        ("", "1-64"),
        ("-dash", "1-64"),
        ("a" * 65, "1-64"),
        ("has space", "1-64"),
    ],
)
def test_username_rules(core: Pamcore, name: str, hint: str) -> None:
    with core.unit() as db, pytest.raises(ValidationError, match=hint) as info:
        d.create_user(core, db, CONSOLE, name)
    assert info.value.field == "username"


def test_duplicate_username_and_short_password(core: Pamcore) -> None:
    with core.unit() as db:
        d.create_user(core, db, CONSOLE, "alice")
    with core.unit() as db, pytest.raises(ValidationError, match="already exists"):
        d.create_user(core, db, CONSOLE, "alice")
    with core.unit() as db, pytest.raises(ValidationError, match="at least 12"):
        d.create_user(core, db, CONSOLE, "bob", password="short")


def test_only_admins_manage_users(core: Pamcore) -> None:
    with core.unit() as db:
        alice = b.make_user(db, "alice")
        with pytest.raises(PolicyDenied, match="administrator"):
            d.create_user(core, db, alice, "mallory")
        # a user may change their own password, but not someone else's
        d.set_password(core, db, alice, "alice", PASSWORD)
        b.make_user(db, "bob")
        with pytest.raises(PolicyDenied):
            d.set_password(core, db, alice, "bob", PASSWORD)


def test_admin_cannot_lock_themselves_out(core: Pamcore) -> None:
    with core.unit() as db:
        erin = b.make_user(db, "erin", Role.ADMIN)
        with pytest.raises(PolicyDenied):
            d.set_role(core, db, erin, "erin", Role.USER)
        with pytest.raises(PolicyDenied):
            d.set_active(core, db, erin, "erin", False)
        with pytest.raises(ValidationError, match="one of"):
            d.set_role(core, db, CONSOLE, "erin", "root")


def _sign_in(core: Pamcore, password: str) -> None:
    with core.unit() as db:
        d.authenticate(core, db, "alice", password)


def test_five_wrong_passwords_lock_the_account(core: Pamcore) -> None:
    with core.unit() as db:
        d.create_user(core, db, CONSOLE, "alice", password=PASSWORD)
    for _ in range(MAX_FAILURES):
        with pytest.raises(AuthenticationFailed, match="wrong username or password"):
            _sign_in(core, "wrong-password-123")
    # the counter survived every raise: now even the right password is refused
    with pytest.raises(AuthenticationFailed, match="too many failed sign-ins"):
        _sign_in(core, PASSWORD)
    with core.reader() as db:
        assert d.get_user(db, "alice").locked_until is not None
        actions = list(db.scalars(select(AuditEvent.action)))
        assert actions.count("auth.failed") == MAX_FAILURES + 1
    with core.unit() as db:
        d.unlock_user(core, db, CONSOLE, "alice")
    _sign_in(core, PASSWORD)
    with core.reader() as db:
        assert db.scalar(select(AuditEvent.action).order_by(AuditEvent.id.desc())) == (
            "auth.succeeded"
        )


def test_disabled_user_cannot_sign_in(core: Pamcore) -> None:
    with core.unit() as db:
        d.create_user(core, db, CONSOLE, "alice", password=PASSWORD)
        d.set_active(core, db, CONSOLE, "alice", False)
    with pytest.raises(AuthenticationFailed, match="disabled"):
        _sign_in(core, PASSWORD)
    with pytest.raises(AuthenticationFailed, match="wrong username"):
        with core.unit() as db:
            d.authenticate(core, db, "nobody", PASSWORD)


def test_groups_and_members(core: Pamcore) -> None:
    with core.unit() as db:
        d.create_user(core, db, CONSOLE, "carol")
        d.create_user(core, db, CONSOLE, "dave")
        d.create_group(core, db, CONSOLE, "Linux Admins", members=["carol"])
        d.add_member(core, db, CONSOLE, "linux-admins", "dave")
        with pytest.raises(ValidationError, match="already in"):
            d.add_member(core, db, CONSOLE, "Linux Admins", "dave")
        # "linux_admins" would answer to the same look-up as "Linux Admins"
        with pytest.raises(ValidationError, match="already exists"):
            d.create_group(core, db, CONSOLE, "linux_admins")
    with core.unit() as db:
        assert group_record(d.get_group(db, "linux admins"))["members"] == ["carol", "dave"]
        d.remove_member(core, db, CONSOLE, "Linux Admins", "carol")
        assert user_record(d.get_user(db, "dave"))["groups"] == ["Linux Admins"]
    with core.unit() as db:
        d.delete_group(core, db, CONSOLE, "Linux Admins")
    with core.reader() as db, pytest.raises(NotFound):
        d.get_group(db, "Linux Admins")


def test_update_group_replaces_its_members_and_audits_who_joined_and_left(core: Pamcore) -> None:
    with core.unit() as db:
        for name in ("carol", "dave", "erin"):
            d.create_user(core, db, CONSOLE, name)
        d.create_group(core, db, CONSOLE, "DBAs", members=["carol", "dave"])
    with core.unit() as db:
        d.update_group(core, db, CONSOLE, "DBAs", members=["dave", "erin", "Erin"])
    with core.unit() as db, pytest.raises(NotFound):
        d.update_group(core, db, CONSOLE, "DBAs", members=["dave", "nobody"])
    with core.unit() as db:
        d.update_group(core, db, CONSOLE, "DBAs", description="Database people")
    with core.reader() as db:
        record = group_record(d.get_group(db, "DBAs"))
        assert sorted(record["members"]) == ["dave", "erin"]
        assert record["description"] == "Database people"
        updated = select(AuditEvent).where(AuditEvent.action == "group.updated")
        details = [e.details for e in db.scalars(updated.order_by(AuditEvent.id))]
    assert details[0]["joined"] == ["erin"] and details[0]["left"] == ["carol"]
    assert "joined" not in details[1]  # the members were not sent: they stay


def test_group_in_use_is_not_deleted(core: Pamcore) -> None:
    with core.unit() as db:
        group = b.make_group(db, "Approvers")
        b.make_profile(db, "Needs approval", tiers=[(1, [], [group])])
    with core.unit() as db, pytest.raises(ValidationError, match="Needs approval"):
        d.delete_group(core, db, CONSOLE, "Approvers")


def test_delete_user_without_history(core: Pamcore) -> None:
    with core.unit() as db:
        d.create_user(core, db, CONSOLE, "temp")
    with core.unit() as db:
        d.delete_user(core, db, CONSOLE, "temp")
    with core.reader() as db:
        assert d.list_users(db) == []


def test_unknown_usernames_take_as_long_as_known_ones(core: Pamcore) -> None:
    """An unknown username runs argon2 against a dummy hash, so timing does not tell which
    usernames exist (issue 11 item 7: it answered in 0.002 s against 0.1 s)."""
    with core.unit() as db:
        b.make_user(db, "alice", password="alice-password-1")

    def attempt(username: str) -> float:
        start = time.perf_counter()
        with pytest.raises(AuthenticationFailed), core.unit() as db:
            d.authenticate(core, db, username, "not-the-password")
        return time.perf_counter() - start

    attempt("nobody")  # the dummy hash is made once, on first use
    known = min(attempt("alice") for _ in range(3))
    unknown = min(attempt("nobody") for _ in range(3))
    assert unknown > known / 2, (unknown, known)
