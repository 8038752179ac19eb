"""The proxy kit (``pamcore.proxy``) against the real core, on SQLite and PostgreSQL: the
sign-in conventions, routing a login to a session with and without an activity, the
waiting room's poll, admission's detached copy, closing, the live connections' watch
with changes made by another node, and recording registration."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import logging
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import select

from pamcore import proxy
from pamcore.clock import FrozenClock
from pamcore.core import Pamcore
from pamcore.errors import AuthenticationFailed, PamError, PolicyDenied
from pamcore.lifecycle import Status
from pamcore.model import ActivitySession, AuditEvent, Recording, Resource, User, UserKey
from pamcore.passwords import hash_password
from pamcore.services import scheduler
from pamcore.services.connections import request_termination
from pamcore.services.sessions import SessionRequest, cancel_session, create_session, end_session
from pamcore.services.terminal_tokens import issue_terminal_token
from pamcore.services.twofactor import confirm_enrolment, start_enrolment
from tests.world import ROOT_PASSWORD, World, available_session, fresh

PASSWORD = "Alice-kit-Pw1"
#: A password that ends in six digits, as an appended code would.
DIGITS_PASSWORD = "Bob-kit-Pw123456"
KEY = "SHA256:kit-test-key"


@pytest.fixture
def signed_up(core: Pamcore, world: World) -> World:
    """The world, with passwords for alice and bob."""
    with core.unit() as db:
        fresh(db, world.alice).password_hash = hash_password(PASSWORD)
        fresh(db, world.bob).password_hash = hash_password(DIGITS_PASSWORD)
    return world


def enrol_totp(core: Pamcore, user: User) -> pyotp.TOTP:
    """Put a second factor in force for ``user``; the code of the current step is used."""
    with core.unit() as db:
        enrolment = start_enrolment(core, db, fresh(db, user))
        totp = pyotp.TOTP(enrolment.secret)
        confirm_enrolment(core, db, fresh(db, user), enrolment.secret_id, totp.at(core.now()))
    return totp


def other_code(code: str) -> str:
    """A code of the same length that is not ``code``."""
    return f"{(int(code) + 1) % 10**proxy.CODE_DIGITS:0{proxy.CODE_DIGITS}d}"


def actions(core: Pamcore) -> list[str]:
    with core.reader() as db:
        return list(db.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


# -- sign-in -------------------------------------------------------------------------------


def test_sign_in_asks_for_the_code_next(
    core: Pamcore, signed_up: World, clock: FrozenClock
) -> None:
    alice = signed_up.alice.id
    assert proxy.sign_in(core, "alice", PASSWORD) == proxy.SignIn(alice, needs_code=False)
    with pytest.raises(AuthenticationFailed, match="wrong username or password"):
        proxy.sign_in(core, "alice", "not-it")
    totp = enrol_totp(core, signed_up.alice)
    clock.advance(seconds=30)
    assert proxy.sign_in(core, "alice", PASSWORD) == proxy.SignIn(alice, needs_code=True)
    with pytest.raises(AuthenticationFailed, match="wrong or expired code"):
        proxy.sign_in_code(core, alice, other_code(totp.at(clock.now)))
    assert proxy.sign_in_code(core, alice, totp.at(clock.now)) == alice


def test_sign_in_appended_takes_the_code_after_the_password(
    core: Pamcore, signed_up: World, clock: FrozenClock
) -> None:
    alice = signed_up.alice.id
    assert proxy.sign_in_appended(core, "alice", PASSWORD) == alice
    assert proxy.sign_in_appended(core, "bob", DIGITS_PASSWORD) == signed_up.bob.id
    totp = enrol_totp(core, signed_up.alice)
    clock.advance(seconds=30)
    with pytest.raises(AuthenticationFailed) as refused:
        proxy.sign_in_appended(core, "alice", PASSWORD)
    assert str(refused.value) == proxy.NEEDS_CODE
    assert actions(core)[-1] == "auth.second_factor_required"
    code = totp.at(clock.now)
    with pytest.raises(AuthenticationFailed, match="wrong or expired code"):
        proxy.sign_in_appended(core, "alice", PASSWORD + other_code(code))
    with pytest.raises(AuthenticationFailed, match="wrong username or password"):
        proxy.sign_in_appended(core, "alice", "not-it" + code)
    assert proxy.sign_in_appended(core, "alice", PASSWORD + code) == alice
    assert actions(core)[-1] == "auth.second_factor"
    with pytest.raises(AuthenticationFailed, match="already used"):
        proxy.sign_in_appended(core, "alice", PASSWORD + code)  # RFC 6238 §5.2: no replay


def test_sign_in_with_a_registered_key(core: Pamcore, world: World) -> None:
    with core.unit() as db:
        db.add(UserKey(user_id=world.alice.id, public_key="ssh-ed25519 AAAA kit", fingerprint=KEY))
    assert proxy.sign_in_key(core, "alice", KEY) == world.alice.id
    with pytest.raises(AuthenticationFailed, match="this key is not registered for that user"):
        proxy.sign_in_key(core, "bob", KEY)


# -- routing and the waiting room -------------------------------------------------------------


def test_route_with_an_activity_requests_then_waits_until_available(
    core: Pamcore, world: World
) -> None:
    alice = world.alice.id
    first = proxy.route(core, alice, "Check out root", "DB01", "tcp")
    assert (first.resource_name, first.waiting) == (
        "db01",
        f"session #{first.session_id} is scheduled for 10:00 UTC",
    )
    assert proxy.still_waiting(core, first.session_id) == first.waiting
    scheduler.tick(core)
    assert proxy.still_waiting(core, first.session_id) is None
    again = proxy.route(core, alice, "Check out root", "db01", "tcp")
    assert again == proxy.Route(first.session_id, "db01", None)
    assert "connection.authorized" not in actions(core)


def test_route_without_an_activity_finds_the_open_session(core: Pamcore, world: World) -> None:
    alice = world.alice.id
    with pytest.raises(PolicyDenied, match="you have no session for db01"):
        proxy.route(core, alice, None, "db01", "tcp")
    assert actions(core)[-1] == "connection.refused"
    sid = available_session(core, world)
    assert proxy.route(core, alice, None, "db01", "tcp") == proxy.Route(sid, "db01", None)
    with pytest.raises(PolicyDenied, match="web01 does not accept tcp"):
        proxy.route(core, alice, None, "web01", "tcp")


def test_still_waiting_says_why_and_refuses_a_finished_session(core: Pamcore, world: World) -> None:
    with core.unit() as db:
        request = SessionRequest("Linux Admin", ("web01",))
        sid = create_session(core, db, fresh(db, world.alice), request).id
    assert proxy.route(core, world.alice.id, None, "web01", "ssh") == proxy.Route(
        sid, "web01", f"session #{sid} is waiting for approval by the Linux Admins group"
    )
    assert "waiting for approval" in (proxy.still_waiting(core, sid) or "")
    with core.unit() as db:
        cancel_session(core, db, fresh(db, world.alice), sid)
    with pytest.raises(PolicyDenied, match=f"session #{sid} canceled"):
        proxy.still_waiting(core, sid)


def test_choices_list_the_connectable_resources(core: Pamcore, world: World) -> None:
    assert proxy.choices(core, world.alice.id, "tcp") == []
    sid = available_session(core, world)
    menu = proxy.choices(core, world.alice.id, "tcp")
    assert menu == [proxy.Choice("Check out root", "db01", sid)]
    assert menu[0].label() == f"db01 (Check out root, session #{sid})"
    assert proxy.choices(core, world.alice.id, "rdp") == []


# -- admission, close ----------------------------------------------------------------------


def test_admit_copies_the_grant_and_keeps_secrets_out_of_repr(core: Pamcore, world: World) -> None:
    sid = available_session(core, world)

    def activity_of(
        _core: Pamcore, _db: object, session: ActivitySession, resource: Resource
    ) -> str:
        return f"{session.activity.name} on {resource.name}"

    admitted = proxy.admit(
        core,
        "tcp",
        world.alice.id,
        "db01",
        peer="127.0.0.1:4000",
        recording_cap=proxy.MIB,
        extra=activity_of,
    )
    with core.reader() as db:
        session = db.get(ActivitySession, sid)
        assert session is not None
        assert Status(session.status) == Status.ACTIVE
        ends_at = session.ends_at
    assert (admitted.protocol, admitted.session_id, admitted.user_id) == (
        "tcp",
        sid,
        world.alice.id,
    )
    assert (admitted.username, admitted.resource_id, admitted.resource_name) == (
        "alice",
        world.db01.id,
        "db01",
    )
    assert (admitted.address, admitted.port, admitted.ends_at) == ("127.0.0.1", 5432, ends_at)
    assert (admitted.warning.total_seconds(), admitted.extendable) == (300, True)
    assert (admitted.login_account, admitted.password, admitted.private_key) == (
        "root",
        ROOT_PASSWORD,
        None,
    )
    assert admitted.extra == "Check out root on db01"
    assert admitted.budget is not None and admitted.budget.cap == proxy.MIB
    shown = repr(admitted)
    assert ROOT_PASSWORD not in shown and "password" not in shown and "extra" not in shown
    assert f"connection_id={admitted.connection_id}" in shown
    with pytest.raises(dataclasses.FrozenInstanceError):
        admitted.port = 1  # type: ignore[misc]


def test_admit_without_recording_or_extra(core: Pamcore, world: World) -> None:
    with core.unit() as db:
        fresh(db, world.standard).recording = False
    available_session(core, world)
    admitted = proxy.admit(core, "ssh", world.alice.id, "db01", activity="Check out root")
    assert (admitted.port, admitted.budget, admitted.extra) == (22, None, None)


def test_admit_refuses_in_words(core: Pamcore, world: World) -> None:
    with pytest.raises(PamError, match="you have no session for db01"):
        proxy.admit(core, "tcp", world.alice.id, "db01")


def test_close_twice_counts_one_close(core: Pamcore, world: World) -> None:
    sid = available_session(core, world)
    admitted = proxy.admit(core, "tcp", world.alice.id, "db01")

    async def twice() -> None:
        await proxy.close(core, admitted, "done")
        await proxy.close(core, admitted, "again")

    asyncio.run(twice())
    with core.reader() as db:
        closes = list(
            db.scalars(select(AuditEvent).where(AuditEvent.action == "connection.closed"))
        )
        assert [e.details["reason"] for e in closes] == ["done"]
        assert Status(db.get(ActivitySession, sid).status) == Status.AVAILABLE  # type: ignore[union-attr]


def test_session_end_and_extend(core: Pamcore, world: World, clock: FrozenClock) -> None:
    sid = available_session(core, world)
    ends_at = proxy.session_end(core, sid)
    assert ends_at is not None
    with pytest.raises(PamError, match="you can extend when 5 minutes or less remain"):
        proxy.extend(core, sid)
    clock.now = ends_at - dt.timedelta(minutes=2)
    extension = proxy.extend(core, sid)
    assert extension.new_end == ends_at + dt.timedelta(minutes=30)
    assert proxy.extensions_left_phrase(extension) == "1 extension left"
    assert proxy.session_end(core, sid) == extension.new_end
    with core.unit() as db:
        end_session(core, db, fresh(db, world.alice), sid)
    assert proxy.session_end(core, sid) is None


# -- live connections ----------------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class Conn:
    """What a listener keeps per connection, and what the watch told it."""

    told: list[tuple[str, object]] = dataclasses.field(default_factory=list)


def test_live_connections_hear_another_nodes_changes(
    core: Pamcore, other_node: Pamcore, world: World
) -> None:
    sid = available_session(core, world)
    kept = proxy.admit(core, "tcp", world.alice.id, "db01")
    doomed = proxy.admit(core, "tcp", world.alice.id, "db01")
    live: proxy.LiveConnections[Conn] = proxy.LiveConnections(core, "kit test")
    a, b = Conn(), Conn()

    def terminate(conn: Conn, reason: str) -> None:
        conn.told.append(("terminate", reason))

    def update(conn: Conn, ends_at: object, _now: object) -> None:
        conn.told.append(("update", ends_at))

    async def told(conn: Conn, what: tuple[str, object]) -> None:
        while what not in conn.told:
            await asyncio.sleep(0.02)

    async def scenario() -> None:
        live.add(kept, a)
        live.add(doomed, b)
        assert len(live) == 2 and live.items() == [(kept, a), (doomed, b)]
        live.watch(terminate, update)
        with other_node.unit() as db:
            request_termination(other_node, db, fresh(db, world.erin), doomed.connection_id, "bye")
        await asyncio.wait_for(told(b, ("terminate", "bye")), 10)
        live.discard(b)
        with other_node.unit() as db:
            end_session(other_node, db, fresh(db, world.alice), sid)
        await asyncio.wait_for(told(a, ("update", None)), 10)
        await live.stop_watch()
        await live.stop_watch()  # a second stop is harmless

    asyncio.run(scenario())
    assert len(live) == 1 and ("terminate", "bye") not in a.told


# -- recordings ----------------------------------------------------------------------------


def test_register_a_recording_and_a_failed_one(
    core: Pamcore, world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sid = available_session(core, world)
    admitted = proxy.admit(core, "tcp", world.alice.id, "db01")
    path = tmp_path / "1.jsonl"
    path.write_bytes(b"{}\n")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    start = core.now()

    async def scenario() -> None:
        await proxy.register_recording(
            core, admitted, path, digest, 3, start, start, {"n": 1}, file_format="pdu-jsonl"
        )
        await proxy.recording_failed(core, admitted, "disk full")
        with caplog.at_level(logging.ERROR, logger="pamcore.proxy"):
            await proxy.register_recording(core, admitted, path, "not-hex", 3, start, None)

    asyncio.run(scenario())
    with core.reader() as db:
        (recording,) = db.scalars(select(Recording))
        assert (recording.session_id, recording.resource_id, recording.protocol) == (
            sid,
            world.db01.id,
            "tcp",
        )
        assert (recording.format, recording.sha256, recording.meta) == (
            "pdu-jsonl",
            digest,
            {"n": 1},
        )
        failed = db.scalar(select(AuditEvent).where(AuditEvent.action == "recording.failed"))
        assert failed is not None and failed.details["reason"] == "disk full"
    assert f"registering a recording of tcp connection #{admitted.connection_id} failed" in (
        caplog.text
    )


# -- tokens --------------------------------------------------------------------------------


def test_redeem_a_connection_token_once(core: Pamcore, other_node: Pamcore, world: World) -> None:
    sid = available_session(core, world)
    secret = "kit-test-instance-secret"
    with core.unit() as db:
        token = issue_terminal_token(core, db, fresh(db, world.alice), sid, "db01", "tcp", secret)
    assert proxy.redeem_token(other_node, token, "tcp", secret) == proxy.ConnectionPass(
        world.alice.id, "alice", sid, "db01"
    )
    with pytest.raises(AuthenticationFailed, match="the terminal token was already used"):
        proxy.redeem_token(core, token, "tcp", secret)


def test_a_held_secret_is_won_once_across_nodes(core: Pamcore, other_node: Pamcore) -> None:
    expires = core.now() + dt.timedelta(seconds=30)
    proxy.hold_once(core, "kit-test", "s3cret", expires, {"user": 7})
    assert proxy.redeem_once(other_node, "kit-test", "s3cret") == proxy.Once(
        known=True, won=True, expires_at=expires, payload={"user": 7}
    )
    assert proxy.redeem_once(core, "kit-test", "s3cret") == proxy.Once(known=True, won=False)
    assert proxy.redeem_once(core, "kit-test", "other") == proxy.Once(known=False, won=False)
