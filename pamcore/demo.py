"""A realistic demo instance in one call, built through the admin services (so it is
validated and audited like anything an administrator types).

Every demo user signs in with :data:`DEMO_PASSWORD`: it is printed once by ``pamcore
demo`` and is for a throw-away demo instance only. Given the demo's SSH target
(:mod:`pamcore.demo_target`), web01 is that sshd and Linux Admin creates and removes a real
ephemeral account on it; without one, web01 is a placeholder and the actions write notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.demo_target import PREFIX, RESOURCE, DemoTarget
from pamcore.model import Platform, Role, User
from pamcore.passwords import generate_password
from pamcore.services import activities as activity_svc
from pamcore.services import directory, inventory
from pamcore.services import policies as policy_svc
from pamcore.services import profiles as profile_svc
from pamcore.services.activities import ActivityChanges
from pamcore.services.common import CONSOLE, Actor
from pamcore.services.policies import PolicyChanges
from pamcore.services.profiles import ProfileChanges

#: The documented demo password (12+ characters, as every pamcore password). Demo only.
DEMO_PASSWORD = "demo-password-1"  # noqa: S105 -- documented, demo only

USERS: tuple[tuple[str, Role, str], ...] = (
    ("alice", Role.USER, "Alice Requester"),
    ("bob", Role.USER, "Bob Requester"),
    ("carol", Role.APPROVER, "Carol Approver"),
    ("dave", Role.APPROVER, "Dave Network Approver"),
    ("erin", Role.ADMIN, "Erin Administrator"),
    ("frank", Role.AUDITOR, "Frank Auditor"),
)
GROUPS = {"Linux Admins": ["carol"], "Network Admins": ["dave"], "DBAs": ["bob"]}
RESOURCES: tuple[tuple[str, str, Platform, str, str], ...] = (
    (RESOURCE, "127.0.0.1", Platform.LINUX, "ssh:22", "Web server"),
    ("db01", "127.0.0.1", Platform.LINUX, "ssh:22", "Database server"),
    ("core-sw1", "192.0.2.10", Platform.CISCO_IOS, "ssh:22", "Core switch (Cisco IOS)"),
    ("dc01", "192.0.2.20", Platform.WINDOWS, "rdp:3389", "Domain controller"),
)
#: (credential, account, resource, managed); each gets a random password nobody is shown.
CREDENTIALS = (
    ("db01 root", "root", "db01", True),
    ("core-sw1 enable", "enable", "core-sw1", True),
    ("dc01 Administrator", "Administrator", "dc01", True),
)
#: Why an instance is not seeded again (and the sign that it is a demo instance).
ALREADY_SEEDED = "demo data is already there"
#: The credential Linux Admin's actions log in to the demo target with (root, by key).
SERVICE_CREDENTIAL = "web01 service"


@dataclass
class DemoSummary:
    """What ``seed_demo`` did, for the edge to print; ``seeded`` is False when the demo
    users were already there (nothing was changed)."""

    seeded: bool
    #: Why nothing was seeded, when ``seeded`` is False.
    reason: str = ""
    users: list[tuple[str, str]] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)
    activities: list[str] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)
    password: str = DEMO_PASSWORD

    def __repr__(self) -> str:
        return f"DemoSummary(seeded={self.seeded}, users={[u for u, _ in self.users]})"


def _why_not_seed(db: Session) -> str | None:
    names = [u for u, _, _ in USERS]
    existing = db.scalars(select(User.username).where(func.lower(User.username).in_(names)))
    if list(existing):
        return ALREADY_SEEDED
    if db.scalar(select(func.count(User.id))):
        return "this instance already has users; the demo only seeds an empty one"
    return None


def why_not_seed(core: Pamcore) -> str | None:
    """Why :func:`seed_demo` would change nothing here, or ``None`` when it would seed."""
    with core.reader() as db:
        return _why_not_seed(db)


def seed_demo(
    core: Pamcore, actor: Actor = CONSOLE, target: DemoTarget | None = None
) -> DemoSummary:
    """Create the demo people, inventory and rules in one unit, into an instance that has
    no users yet; otherwise nothing (running it twice, or on a real instance, is harmless).
    With ``target``, web01 is the demo's sshd and Linux Admin runs the Linux actions on it
    (the ``pamcore-ssh`` plugin must be installed)."""
    with core.unit() as db:
        if reason := _why_not_seed(db):
            return DemoSummary(seeded=False, reason=reason)
        summary = DemoSummary(seeded=True)
        for username, role, display in USERS:
            directory.create_user(
                core, db, actor, username, role=role, display_name=display, password=DEMO_PASSWORD
            )
            summary.users.append((username, role.value))
        for group, members in GROUPS.items():
            directory.create_group(core, db, actor, group, members=members)
        for name, address, platform, protocol, description in RESOURCES:
            host_key = None
            if target is not None and name == RESOURCE:
                protocol, host_key = f"ssh:{target.port}", target.host_key_line
                description = "The demo's SSH target: an sshd of its own on this machine"
            inventory.create_resource(
                core,
                db,
                actor,
                name,
                address,
                platform=platform,
                protocols=[protocol],
                description=description,
                host_key=host_key,
                trust_on_first_use=host_key is None,
            )
            summary.resources.append(name)
        for name, account, resource, managed in CREDENTIALS:
            inventory.create_credential(
                core,
                db,
                actor,
                name,
                account,
                resource=resource,
                password=generate_password(),
                managed=managed,
            )
        if target is not None:
            inventory.create_credential(
                core,
                db,
                actor,
                SERVICE_CREDENTIAL,
                "root",
                resource=RESOURCE,
                private_key=target.service_key,
                description="Creates and removes the demo's ephemeral accounts",
            )

        activities = {
            "Linux Admin": ActivityChanges(
                description="An ephemeral account, removed when the session ends",
                login_mode="ephemeral",
                login_template=PREFIX + "{user}-{random}",
            ),
            "Check out root on db01": ActivityChanges(
                description="Check out the root password of db01",
                kind="credential",
                credential="db01 root",
            ),
            "Network Admin": ActivityChanges(
                description="Enable-level access to network devices", credential="core-sw1 enable"
            ),
            "Windows Admin": ActivityChanges(
                description="Local administrator on Windows servers",
                credential="dc01 Administrator",
            ),
        }
        for name, changes in activities.items():
            activity_svc.create_activity(core, db, actor, name, changes)
            summary.activities.append(name)
        if target is not None:
            service = {"service_credential": SERVICE_CREDENTIAL}
            for phase, action in (
                ("pre", "linux-create-account"),
                ("post", "linux-remove-account"),
            ):
                activity_svc.add_action(core, db, actor, "Linux Admin", phase, action, service)
        else:
            for phase, message in (("pre", "create ephemeral account"), ("post", "remove it")):
                activity_svc.add_action(
                    core, db, actor, "Linux Admin", phase, "audit-note", {"message": message}
                )

        standard = ProfileChanges(
            description="No approval; one hour, extendable twice by 30 minutes",
            max_duration_minutes=60,
            extension_enabled=True,
            extension_minutes=30,
            extension_max_count=2,
            allow_view_password=True,
            allow_copy_password=True,
        )
        profile_svc.create_profile(core, db, actor, "Standard", standard)
        profile_svc.create_profile(
            core,
            db,
            actor,
            "Approval required",
            ProfileChanges(
                description=(
                    "One Linux Admin approves (erin after 10 minutes); 5-minute sessions, so "
                    "the tour can extend at once; the ephemeral password may be viewed"
                ),
                max_duration_minutes=5,
                extension_minutes=30,
                extension_max_count=2,
                allow_view_password=True,
                allow_copy_password=True,
                escalation_minutes=10,
                escalation_user="erin",
            ),
        )
        profile_svc.add_tier(core, db, actor, "Approval required", groups=["Linux Admins"])
        profile_svc.create_profile(
            core,
            db,
            actor,
            "Two-tier",
            ProfileChanges(
                description="A network admin, then carol; notes and a ticket are required",
                notes_required=True,
                ticket_required=True,
            ),
        )
        profile_svc.add_tier(core, db, actor, "Two-tier", groups=["Network Admins"])
        profile_svc.add_tier(core, db, actor, "Two-tier", users=["carol"])
        summary.profiles = ["Standard", "Approval required", "Two-tier"]

        grants = {
            "alice Linux Admin on web01": ("Approval required", ["alice"], "Linux Admin", "web01"),
            "db01 root checkout": ("Standard", ["alice", "bob"], "Check out root on db01", "db01"),
            "bob Network Admin on core-sw1": ("Two-tier", ["bob"], "Network Admin", "core-sw1"),
            "erin Windows Admin on dc01": ("Standard", ["erin"], "Windows Admin", "dc01"),
        }
        for name, (profile, users, activity, resource) in grants.items():
            policy_svc.create_policy(
                core,
                db,
                actor,
                name,
                PolicyChanges(
                    profile=profile, users=users, activities=[activity], resources=[resource]
                ),
            )
            summary.policies.append(name)
    return summary
