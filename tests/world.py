"""The small world of data most core and web tests share (alice requests; carol and dave
approve; erin administers), importable so tests never import from a ``conftest.py``."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

from pamcore.core import Pamcore
from pamcore.model import (
    Activity,
    ActivityKind,
    ConnectionProfile,
    Credential,
    Group,
    LoginMode,
    Resource,
    Role,
    User,
)
from pamcore.services import scheduler
from pamcore.services.connections import connection_opened
from pamcore.services.recordings import register_recording
from pamcore.services.sessions import SessionRequest, create_session
from pamcore.testing import builders as b

ROOT_PASSWORD = "Db01-root-S3cret!"


@dataclass
class World:
    """alice requests; carol and dave approve (Linux Admins); erin administers."""

    alice: User
    bob: User
    carol: User
    dave: User
    erin: User
    admins: Group
    web01: Resource
    web02: Resource
    db01: Resource
    linux_admin: Activity
    checkout: Activity
    root_cred: Credential
    standard: ConnectionProfile
    approval: ConnectionProfile


def make_world(core: Pamcore) -> World:
    """Create the world's users, group, resources, activities, profiles and policies."""
    with core.unit() as db:
        alice = b.make_user(db, "alice")
        bob = b.make_user(db, "bob")
        carol = b.make_user(db, "carol", Role.APPROVER)
        dave = b.make_user(db, "dave", Role.APPROVER)
        erin = b.make_user(db, "erin", Role.ADMIN)
        admins = b.make_group(db, "Linux Admins", [carol, dave])
        web01 = b.make_resource(db, "web01")
        web02 = b.make_resource(db, "web02")
        db01 = b.make_resource(db, "db01", protocols={"ssh": 22, "tcp": 5432})
        root_cred = b.make_credential(core, db, "db01 root", "root", ROOT_PASSWORD, resource=db01)
        linux_admin = b.make_activity(
            db,
            "Linux Admin",
            login_mode=LoginMode.EPHEMERAL,
            pre=[("audit-note", {"message": "create account"})],
            post=[("audit-note", {"message": "remove account"})],
        )
        checkout = b.make_activity(
            db, "Check out root", kind=ActivityKind.CREDENTIAL, credential=root_cred
        )
        standard = b.make_profile(
            db,
            "Standard",
            max_duration_minutes=60,
            extension_minutes=30,
            extension_max_count=2,
            allow_view_password=True,
        )
        approval = b.make_profile(db, "Approval", tiers=[(1, [], [admins])])
        b.make_policy(db, "alice web", approval, [linux_admin], [web01, web02], users=[alice])
        b.make_policy(db, "db checkout", standard, [checkout], [db01], users=[alice, bob])
    return World(
        alice,
        bob,
        carol,
        dave,
        erin,
        admins,
        web01,
        web02,
        db01,
        linux_admin,
        checkout,
        root_cred,
        standard,
        approval,
    )


def fresh(db, obj):  # type: ignore[no-untyped-def]
    """The row behind a detached fixture object, loaded in ``db`` (never ``merge``, which
    would copy the fixture's stale collections back over the database)."""
    return db.get(type(obj), obj.id)


def requested_session(core: Pamcore, user: User) -> int:
    """``user``'s request to check out root on db01, as yet undecided."""
    with core.unit() as db:
        req = SessionRequest("Check out root", ("db01",))
        return create_session(core, db, fresh(db, user), req).id


def available_session(core: Pamcore, world: World) -> int:
    """alice's session on db01, made available by a scheduler tick."""
    session_id = requested_session(core, world.alice)
    scheduler.tick(core)
    return session_id


def opened_connection(core: Pamcore, world: World, sid: int) -> int:
    """A connection of alice's to db01, held by ``core``'s node."""
    with core.unit() as db:
        alice, db01 = fresh(db, world.alice), fresh(db, world.db01)
        return connection_opened(core, db, alice, sid, db01, "ssh", "127.0.0.1:50000").id


def saved_recording(core: Pamcore, world: World, sid: int, folder: Path, **extra) -> int:  # type: ignore[no-untyped-def]
    """A three-minute recording of session ``sid`` on db01, registered with its digest."""
    path = folder / f"{sid}.cast"
    path.write_bytes(b'{"version": 2, "width": 80, "height": 24}\n')
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    start = core.now()
    with core.unit() as db:
        return register_recording(
            core,
            db,
            sid,
            world.db01.id,
            "ssh",
            path,
            digest,
            path.stat().st_size,
            start,
            start + dt.timedelta(minutes=3),
            {"width": 80, "height": 24, **extra},
        ).id
