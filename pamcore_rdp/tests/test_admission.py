"""RDP on the proxy kit against the real core (SQLite and PostgreSQL): Phase A's
DirectConnect routing to a session, Phase B's admission with the resource's RDP settings
and the vaulted credential (:func:`pamcore_rdp.proxy.target.rdp_target`), and the
live-connection bookkeeping. Sign-in (the code appended to the password) is the kit's,
tested in tests/test_proxy_kit.py."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from pamcore_rdp.proxy.recording import recording_cap
from pamcore_rdp.proxy.target import PROTOCOL, RdpTarget, rdp_target, split_account
from sqlalchemy import select

from pamcore.core import Pamcore
from pamcore.errors import NotFound, PolicyDenied, ValidationError
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
from pamcore.proxy import Admitted, Route, admit, close, route
from pamcore.services import scheduler
from pamcore.services.approvals import approve_session
from pamcore.services.inventory import set_setting
from pamcore.services.sessions import SessionRequest, create_session
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


# -- DirectConnect routing (Phase A) -----------------------------------------------------


def test_route_to_an_available_session_without_counting_a_connection(world: World) -> None:
    sid = available_session(world)
    found = route(world.core, world.alice, "windows-admin", "WIN01", PROTOCOL)
    assert found == Route(sid, "win01", None)
    assert route(world.core, world.alice, None, "win01", PROTOCOL) == found
    with world.core.reader() as db:
        session = db.get(ActivitySession, sid)
        assert (Status(session.status), session.connections) == (Status.AVAILABLE, [])
    assert "connection.authorized" not in audit_actions(world.core)


def test_directconnect_requests_a_session_that_waits_for_approval(world: World) -> None:
    found = route(world.core, world.alice, "Audit", "win01", PROTOCOL)
    assert found.waiting == f"session #{found.session_id} is waiting for approval by carol"
    # asked again (the user reconnects): the same request, not a second one
    assert route(world.core, world.alice, "Audit", "win01", PROTOCOL) == found
    with world.core.unit() as db:
        approve_session(world.core, db, db.get(User, world.carol), found.session_id)
    scheduler.tick(world.core)
    assert route(world.core, world.alice, "Audit", "win01", PROTOCOL).waiting is None


def test_route_refusals_are_sentences(world: World) -> None:
    with pytest.raises(PolicyDenied, match="you have no session for win01; request one first"):
        route(world.core, world.alice, None, "win01", PROTOCOL)
    with pytest.raises(PolicyDenied, match=r"web01 does not accept rdp \(it offers: ssh\)"):
        route(world.core, world.alice, "Windows Admin", "web01", PROTOCOL)
    with pytest.raises(NotFound, match="no resource named 'win99'"):
        route(world.core, world.alice, None, "win99", PROTOCOL)
    available_session(world)
    route(world.core, world.alice, "Audit", "win01", PROTOCOL)  # a second activity, waiting
    with pytest.raises(PolicyDenied, match=r"log in as one of alice\+Audit\+win01, "):
        route(world.core, world.alice, None, "win01", PROTOCOL)
    assert audit_actions(world.core).count("connection.refused") == 3


# -- admission (Phase B) -----------------------------------------------------------------


def admit_rdp(world: World, session_id: int) -> Admitted[RdpTarget]:
    """Phase B's admission, as the listener makes it after a redirect token."""
    return admit(
        world.core,
        PROTOCOL,
        world.alice,
        "win01",
        peer="127.0.0.1:50123",
        session_id=session_id,
        recording_cap=recording_cap(world.core.config),
        extra=rdp_target,
    )


def test_admit_carries_the_target_credential_and_settings(world: World) -> None:
    sid = available_session(world)
    admitted = admit_rdp(world, sid)
    assert (admitted.session_id, admitted.username, admitted.resource_name) == (
        sid,
        "alice",
        "win01",
    )
    assert (admitted.address, admitted.port) == ("10.0.0.7", 3389)
    target = admitted.extra
    assert (target.domain, target.account, admitted.password) == (
        "CORP",
        "Administrator",
        VAULTED,
    )
    assert (target.security, target.nla_mechanism) == ("auto", "ntlm")
    assert admitted.budget is not None  # the profile records
    assert VAULTED not in repr(admitted)
    with world.core.reader() as db:
        assert Status(db.get(ActivitySession, sid).status) == Status.ACTIVE
        assert db.get(Resource, admitted.resource_id).name == "win01"
    asyncio.run(close(world.core, admitted, "client closed"))
    with world.core.reader() as db:
        assert Status(db.get(ActivitySession, sid).status) == Status.AVAILABLE
    assert audit_actions(world.core).count("connection.authorized") == 1


def test_admit_pinned_to_another_users_session_is_refused(world: World) -> None:
    sid = available_session(world)
    with pytest.raises(PolicyDenied, match=f"session #{sid + 1} does not give you win01"):
        admit_rdp(world, sid + 1)


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
