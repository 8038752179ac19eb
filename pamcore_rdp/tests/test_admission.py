"""RDP admission against the real core (SQLite and PostgreSQL): sign-in with and without a
second factor, DirectConnect resolution to a session, admission with the resource's RDP
settings and the vaulted credential, and the live-connection bookkeeping."""

from __future__ import annotations

from dataclasses import dataclass

import pyotp
import pytest
from pamcore_rdp.proxy.admission import (
    NEEDS_CODE,
    Route,
    admit,
    resolve_login,
    sign_in_password,
    split_account,
)
from sqlalchemy import select

from pamcore.clock import FrozenClock
from pamcore.core import Pamcore
from pamcore.errors import AuthenticationFailed, NotFound, PolicyDenied, ValidationError
from pamcore.lifecycle import Status
from pamcore.model import (
    ActivitySession,
    AuditEvent,
    LoginMode,
    Platform,
    Resource,
    Role,
    User,
)
from pamcore.plugins import PluginHost
from pamcore.services import scheduler
from pamcore.services.approvals import approve_session
from pamcore.services.connections import close_connection
from pamcore.services.inventory import set_setting
from pamcore.services.sessions import SessionRequest, create_session
from pamcore.services.twofactor import confirm_enrolment, start_enrolment
from pamcore.testing import builders as b

PASSWORD = "Alice-rdp-Pw1"
VAULTED = "Win01-Administrator-S3cret"


@pytest.fixture
def plugin_host(installed_plugin_host: PluginHost) -> PluginHost:
    """With the rdp plugin: its resource settings are registered."""
    return installed_plugin_host


@dataclass
class World:
    core: Pamcore
    alice: int
    carol: int


@pytest.fixture
def world(core: Pamcore) -> World:
    with core.unit() as db:
        alice = b.make_user(db, "alice", password=PASSWORD)
        carol = b.make_user(db, "carol", Role.APPROVER)
        erin = b.make_user(db, "erin", Role.ADMIN)
        win01 = b.make_resource(
            db, "win01", address="10.0.0.7", protocols={"rdp": 3389}, platform=Platform.WINDOWS
        )
        b.make_resource(db, "web01", protocols={"ssh": 22})
        cred = b.make_credential(
            core, db, "win01 admin", "CORP\\Administrator", VAULTED, resource=win01
        )
        admin = b.make_activity(db, "Windows Admin", login_mode=LoginMode.MANAGED, credential=cred)
        standard = b.make_profile(db, "standard", max_duration_minutes=60, recording=True)
        b.make_policy(db, "windows", standard, [admin], [win01], [alice])
        gated = b.make_profile(db, "gated", tiers=[(1, [carol], [])])
        audit = b.make_activity(db, "Audit", login_mode=LoginMode.MANAGED, credential=cred)
        b.make_policy(db, "audit", gated, [audit], [win01], [alice])
        set_setting(core, db, erin, "win01", "rdp", "nla_mechanism", "ntlm")
        ids = World(core, alice.id, carol.id)
    return ids


def available_session(world: World, activity: str = "Windows Admin") -> int:
    with world.core.unit() as db:
        alice = db.get(User, world.alice)
        sid = create_session(world.core, db, alice, SessionRequest(activity, ("win01",))).id
    scheduler.tick(world.core)
    return sid


def audit_actions(core: Pamcore) -> list[str]:
    with core.reader() as db:
        return list(db.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


# -- sign-in -----------------------------------------------------------------------------


def test_sign_in_with_the_client_info_password(world: World) -> None:
    assert sign_in_password(world.core, "alice", PASSWORD) == world.alice
    with pytest.raises(AuthenticationFailed, match="wrong username or password"):
        sign_in_password(world.core, "alice", "not-it")
    with pytest.raises(AuthenticationFailed, match="wrong username or password"):
        sign_in_password(world.core, "nobody", PASSWORD)
    assert audit_actions(world.core).count("auth.failed") == 2


def test_totp_user_appends_the_code_to_the_password(world: World, clock: FrozenClock) -> None:
    with world.core.unit() as db:
        alice = db.get(User, world.alice)
        enrolment = start_enrolment(world.core, db, alice)
        first = pyotp.TOTP(enrolment.secret).at(clock.now)
        confirm_enrolment(world.core, db, alice, enrolment.secret_id, first)
    with pytest.raises(AuthenticationFailed) as refused:
        sign_in_password(world.core, "alice", PASSWORD)
    assert str(refused.value) == NEEDS_CODE
    assert audit_actions(world.core)[-1] == "auth.second_factor_required"
    with pytest.raises(AuthenticationFailed, match="already used"):
        sign_in_password(world.core, "alice", PASSWORD + first)  # RFC 6238 §5.2: no replay
    clock.advance(seconds=30)
    code = pyotp.TOTP(enrolment.secret).at(clock.now)
    with pytest.raises(AuthenticationFailed, match="wrong username or password"):
        sign_in_password(world.core, "alice", "not-it" + code)
    assert sign_in_password(world.core, "alice", PASSWORD + code) == world.alice
    assert audit_actions(world.core)[-1] == "auth.second_factor"


# -- DirectConnect resolution (Phase A) --------------------------------------------------


def test_resolve_an_available_session_without_counting_a_connection(world: World) -> None:
    sid = available_session(world)
    route = resolve_login(world.core, world.alice, "windows-admin", "WIN01")
    assert route == Route(sid, "win01", None)
    assert resolve_login(world.core, world.alice, None, "win01") == route
    with world.core.reader() as db:
        session = db.get(ActivitySession, sid)
        assert (Status(session.status), session.connections) == (Status.AVAILABLE, [])
    assert "connection.authorized" not in audit_actions(world.core)


def test_directconnect_requests_a_session_that_waits_for_approval(world: World) -> None:
    route = resolve_login(world.core, world.alice, "Audit", "win01")
    assert route.waiting == f"session #{route.session_id} is waiting for approval by carol"
    # asked again (the user reconnects): the same request, not a second one
    assert resolve_login(world.core, world.alice, "Audit", "win01") == route
    with world.core.unit() as db:
        approve_session(world.core, db, db.get(User, world.carol), route.session_id)
    scheduler.tick(world.core)
    assert resolve_login(world.core, world.alice, "Audit", "win01").waiting is None


def test_resolve_refusals_are_sentences(world: World) -> None:
    with pytest.raises(PolicyDenied, match="you have no session for win01; request one first"):
        resolve_login(world.core, world.alice, None, "win01")
    with pytest.raises(PolicyDenied, match=r"web01 does not accept rdp \(it offers: ssh\)"):
        resolve_login(world.core, world.alice, "Windows Admin", "web01")
    with pytest.raises(NotFound, match="no resource named 'win99'"):
        resolve_login(world.core, world.alice, None, "win99")
    available_session(world)
    resolve_login(world.core, world.alice, "Audit", "win01")  # a second activity, waiting
    with pytest.raises(PolicyDenied, match=r"log in as one of alice\+Audit\+win01, "):
        resolve_login(world.core, world.alice, None, "win01")
    assert audit_actions(world.core).count("connection.refused") == 3


# -- admission (Phase B) -----------------------------------------------------------------


def test_admit_carries_the_target_credential_and_settings(world: World) -> None:
    sid = available_session(world)
    grant = admit(world.core, world.alice, None, "win01", "127.0.0.1:50123", sid)
    assert (grant.session_id, grant.username, grant.resource_name) == (sid, "alice", "win01")
    assert (grant.address, grant.port) == ("10.0.0.7", 3389)
    assert (grant.domain, grant.login_account, grant.password) == (
        "CORP",
        "Administrator",
        VAULTED,
    )
    assert (grant.security, grant.nla_mechanism, grant.recording) == ("auto", "ntlm", True)
    assert VAULTED not in repr(grant)
    with world.core.reader() as db:
        assert Status(db.get(ActivitySession, sid).status) == Status.ACTIVE
        assert db.get(Resource, grant.resource_id).name == "win01"
    close_connection(world.core, grant.connection_id, "client closed")
    with world.core.reader() as db:
        assert Status(db.get(ActivitySession, sid).status) == Status.AVAILABLE
    assert audit_actions(world.core).count("connection.authorized") == 1


def test_admit_pinned_to_another_users_session_is_refused(world: World) -> None:
    sid = available_session(world)
    with pytest.raises(PolicyDenied, match=f"session #{sid + 1} does not give you win01"):
        admit(world.core, world.alice, None, "win01", "127.0.0.1:1", sid + 1)


def test_settings_are_validated_when_set(world: World) -> None:
    with world.core.unit() as db:
        erin = db.scalar(select(User).where(User.username == "erin"))
        with pytest.raises(ValidationError, match="must be one of auto, nla, tls, not 'rdp'"):
            set_setting(world.core, db, erin, "win01", "rdp", "security", "rdp")
        with pytest.raises(ValidationError, match="plain domain name"):
            set_setting(world.core, db, erin, "win01", "rdp", "domain", "CORP\\x")
        set_setting(world.core, db, erin, "win01", "rdp", "security", " NLA ")
        set_setting(world.core, db, erin, "win01", "rdp", "domain", "corp.example.com")


def test_split_account() -> None:
    assert split_account("CORP\\admin", "other") == ("CORP", "admin")
    assert split_account("admin@corp.example", "") == ("", "admin@corp.example")
    assert split_account("admin", "CORP") == ("CORP", "admin")
