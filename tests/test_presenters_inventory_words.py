"""The words the admin pages use for a resource's host key pin and an activity's login and
actions (pamcore.presenters), in every state, and placing an item in policies from its own
page (pamcore.services.policies.set_policies_naming)."""

from __future__ import annotations

import asyncssh
import pytest

from pamcore.core import Pamcore
from pamcore.errors import PolicyDenied, ValidationError
from pamcore.model import ActivityAction, AuditEvent, LoginMode
from pamcore.presenters import action_words, activity_rules, host_key_words
from pamcore.services import policies
from pamcore.services.common import CONSOLE
from tests.world import World, fresh


def test_a_host_key_pin_in_words(core: Pamcore, world: World) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    with core.unit() as db:
        web01 = fresh(db, world.web01)
        assert host_key_words(web01) == (
            "Not pinned, and a first key is not trusted: connections are refused until one is."
        )
        web01.trust_on_first_use = True
        assert host_key_words(web01).startswith("Not pinned yet: the first host key (SSH)")
        web01.host_key = key.export_public_key().decode().strip()  # as ssh-keygen -l shows it
        assert host_key_words(web01) == (
            f"Pinned to ssh-ed25519 {key.get_fingerprint('sha256')}; any other key is refused."
        )
        web01.host_key = "sha256:abc+/def"
        assert host_key_words(web01) == "Pinned to SHA256:abc+/def; any other key is refused."
        web01.host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI="  # not base64: shown shortened
        assert host_key_words(web01) == (
            "Pinned to ssh-ed25519 AAAAC3NzaC1lZDI1...; any other key is refused."
        )


def test_an_activity_login_and_actions_in_words(core: Pamcore, world: World) -> None:
    with core.unit() as db:
        linux_admin, checkout = fresh(db, world.linux_admin), fresh(db, world.checkout)
        assert dict(activity_rules(checkout))["Login"] == (
            "As root, with the vaulted credential db01 root."
        )
        linux_admin.login_template = "pam-{user}"
        assert dict(activity_rules(linux_admin))["Login"] == (
            "A new account for each session, named from the template pam-{user}."
        )
        linux_admin.login_mode = LoginMode.MANAGED
        assert dict(activity_rules(linux_admin))["Login"] == (
            "No credential chosen: sessions cannot log in until one is."
        )
        note = core.hooks.actions()["audit-note"]
        step = ActivityAction(action_type="audit-note", params={})
        assert action_words(step, note) == note.description + "."
        assert action_words(step, None) == "No installed plugin provides this action type."


def test_policies_naming_an_item_change_through_update_policy(core: Pamcore, world: World) -> None:
    with core.unit() as db:
        changed = policies.set_policies_naming(
            core, db, CONSOLE, "resources", "db01", ["db checkout", "alice web"]
        )
        assert [p.name for p in changed] == ["alice web"]
    with pytest.raises(ValidationError) as refused, core.unit() as db:
        policies.set_policies_naming(core, db, CONSOLE, "resources", "db01", [])
    assert str(refused.value) == "policies: 'db checkout': grant on at least one resource"
    with pytest.raises(PolicyDenied), core.unit() as db:
        policies.set_policies_naming(core, db, fresh(db, world.alice), "activities", "x", [])
    with core.reader() as db:
        reached = policies.policies_by(db, "resources")["db01"]
        assert [p.name for p in reached] == ["alice web", "db checkout"]  # the refusal undone
        events = db.query(AuditEvent).filter_by(action="policy.updated").all()
        assert [(e.target, sorted(e.details["resources"])) for e in events] == [
            ("alice web", ["db01", "web01", "web02"])
        ]
