"""Activities, connection profiles and access policies through the policies service."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from pamcore.core import Pamcore
from pamcore.errors import ValidationError
from pamcore.model import ActionPhase, ActivityKind, AuditEvent, LoginMode, User
from pamcore.presenters import activity_record, policy_record, profile_record
from pamcore.services import activities as act
from pamcore.services import policies as pol
from pamcore.services import profiles as prof
from pamcore.services.access import find_policy
from pamcore.services.actions import check_login_template
from pamcore.services.activities import ActivityChanges
from pamcore.services.common import CONSOLE
from pamcore.services.policies import PolicyChanges
from pamcore.services.profiles import ProfileChanges
from pamcore.testing import builders as b


@pytest.fixture
def basics(core: Pamcore) -> None:
    with core.unit() as db:
        carol = b.make_user(db, "carol")
        b.make_user(db, "dave")
        b.make_user(db, "alice")
        b.make_group(db, "Linux Admins", [carol])
        b.make_resource(db, "web01")
        b.make_credential(core, db, "db01 root", "root", "Root-Pa55word-1")


def test_activity_defaults_and_rules(core: Pamcore, basics: None) -> None:
    with core.unit() as db:
        linux = act.create_activity(core, db, CONSOLE, "Linux Admin", ActivityChanges())
        assert linux.login_mode == LoginMode.EPHEMERAL
        checkout = act.create_activity(
            core,
            db,
            CONSOLE,
            "Check out root",
            ActivityChanges(kind="credential", credential="db01 root"),
        )
        assert checkout.login_mode == LoginMode.MANAGED
    cases = [
        (ActivityChanges(kind=ActivityKind.CREDENTIAL), "credential"),
        (ActivityChanges(login_mode=LoginMode.MANAGED), "credential"),
        (
            ActivityChanges(kind="credential", login_mode="ephemeral", credential="db01 root"),
            "login_mode",
        ),
        (ActivityChanges(login_template="{user}-{nope}"), "login_template"),
        (ActivityChanges(login_template="Bad Name {user}"), "login_template"),
        (ActivityChanges(kind="wizardry"), "kind"),
    ]
    for changes, field in cases:
        with core.unit() as db, pytest.raises(ValidationError) as info:
            act.create_activity(core, db, CONSOLE, "Other", changes)
        assert info.value.field == field, changes


def test_a_login_template_ending_in_a_newline_makes_no_account_name() -> None:
    with pytest.raises(ValidationError, match="not a valid account name"):
        check_login_template("{user}\n")


def test_actions_are_ordered_and_checked(core: Pamcore, basics: None) -> None:
    with core.unit() as db:
        act.create_activity(core, db, CONSOLE, "Linux Admin", ActivityChanges())
        act.add_action(core, db, CONSOLE, "Linux Admin", "pre", "audit-note", {"message": "b"})
        act.add_action(
            core, db, CONSOLE, "Linux Admin", "pre", "audit-note", {"message": "a"}, position=1
        )
        act.add_action(
            core,
            db,
            CONSOLE,
            "Linux Admin",
            "post",
            "audit-note",
            act.parse_params('{"message": "bye"}'),
        )
        with pytest.raises(ValidationError, match="not installed"):
            act.add_action(core, db, CONSOLE, "Linux Admin", "pre", "no-such-action")
        with pytest.raises(ValidationError, match="does not understand colour"):
            act.add_action(core, db, CONSOLE, "Linux Admin", "pre", "audit-note", {"colour": 1})
        with pytest.raises(ValidationError, match="JSON"):
            act.parse_params("{message: hi}")
    with core.unit() as db:
        activity = act.get_activity(db, "linux-admin")
        assert [a.params["message"] for a in activity.actions_for(ActionPhase.PRE)] == ["a", "b"]
        act.remove_action(core, db, CONSOLE, "Linux Admin", "pre", 1)
    with core.reader() as db:
        record = activity_record(act.get_activity(db, "Linux Admin"))
        assert record["pre_actions"] == ['1. audit-note {"message": "b"}']
        assert record["post_actions"] == ['1. audit-note {"message": "bye"}']


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        (ProfileChanges(max_duration_minutes=0), "max_duration_minutes"),
        (ProfileChanges(max_duration_minutes=10081), "max_duration_minutes"),
        (ProfileChanges(extension_minutes=1441), "extension_minutes"),
        (ProfileChanges(extension_max_count=21), "extension_max_count"),
        (ProfileChanges(warning_minutes=61), "warning_minutes"),
        (ProfileChanges(password_view_seconds=4), "password_view_seconds"),
        (ProfileChanges(escalation_minutes=10), "escalation"),
        (ProfileChanges(escalation_user="carol"), "escalation_minutes"),
        (
            ProfileChanges(
                escalation_minutes=5, escalation_user="carol", escalation_group="Linux Admins"
            ),
            "escalation",
        ),
    ],
)
def test_profile_ranges(core: Pamcore, basics: None, changes: ProfileChanges, field: str) -> None:
    with core.unit() as db, pytest.raises(ValidationError) as info:
        prof.create_profile(core, db, CONSOLE, "P", changes)
    assert info.value.field == field


def test_profile_tiers(core: Pamcore, basics: None) -> None:
    with core.unit() as db:
        prof.create_profile(
            core,
            db,
            CONSOLE,
            "Two-tier",
            ProfileChanges(escalation_minutes=10, escalation_user="dave", notes_required=True),
        )
        prof.add_tier(core, db, CONSOLE, "Two-tier", groups=["Linux Admins"])
        prof.add_tier(core, db, CONSOLE, "Two-tier", users=["carol", "dave"], approvals_required=2)
        with pytest.raises(ValidationError, match="never be reached"):
            prof.add_tier(core, db, CONSOLE, "Two-tier", users=["carol"], approvals_required=2)
        with pytest.raises(ValidationError, match="at least one approving"):
            prof.add_tier(core, db, CONSOLE, "Two-tier")
        prof.add_tier(core, db, CONSOLE, "Two-tier", users=["alice"])
        with pytest.raises(ValidationError, match="at most 3"):
            prof.add_tier(core, db, CONSOLE, "Two-tier", users=["alice"])
    with core.unit() as db:
        prof.remove_tier(core, db, CONSOLE, "Two-tier", 1)
    with core.reader() as db:
        record = profile_record(prof.get_profile(db, "two tier"))
        assert record["approval_tiers"] == ["1: 2 of carol or dave", "2: 1 of alice"]
        assert record["escalation_to"] == "dave"
        assert record["notes_required"] is True


def test_policy_grants_and_disable(core: Pamcore, basics: None) -> None:
    with core.unit() as db:
        act.create_activity(core, db, CONSOLE, "Linux Admin", ActivityChanges())
        prof.create_profile(core, db, CONSOLE, "Standard")
        pol.create_policy(
            core,
            db,
            CONSOLE,
            "alice on web",
            PolicyChanges(
                profile="Standard", users=["alice"], activities=["Linux Admin"], resources=["web01"]
            ),
        )
        with pytest.raises(ValidationError, match="user or group"):
            pol.create_policy(
                core,
                db,
                CONSOLE,
                "empty",
                PolicyChanges(profile="Standard", activities=["Linux Admin"], resources=["web01"]),
            )
    with core.unit() as db:
        alice = db.scalar(select(User).where(User.username == "alice"))
        activity, resource = act.get_activity(db, "Linux Admin"), pol.list_policies(db)[0]
        assert find_policy(db, alice, activity, resource.resources).name == "alice on web"
        pol.set_policy_enabled(core, db, CONSOLE, "alice on web", False)
    with core.reader() as db:
        assert policy_record(pol.get_policy(db, "alice on web"))["enabled"] is False
        actions = list(db.scalars(select(AuditEvent.action)))
        assert {"activity.created", "profile.created", "policy.created", "policy.disabled"} <= set(
            actions
        )
    with core.unit() as db, pytest.raises(ValidationError, match="alice on web"):
        prof.delete_profile(core, db, CONSOLE, "Standard")
    with core.unit() as db:
        pol.delete_policy(core, db, CONSOLE, "alice on web")
        prof.delete_profile(core, db, CONSOLE, "Standard")
        act.delete_activity(core, db, CONSOLE, "Linux Admin")
