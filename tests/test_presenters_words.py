"""The words the dashboard and the admin pages use for approval tiers, profile rules and
policies (pamcore.presenters), so both say the same thing."""

from __future__ import annotations

import subprocess
import sys

from pamcore.core import Pamcore
from pamcore.model import AccessPolicy, ConnectionProfile
from pamcore.presenters import approval_sentence, policy_sentence, profile_rules
from pamcore.testing import builders as b
from tests.world import World, fresh


def test_tiers_read_as_a_sentence(core: Pamcore, world: World) -> None:
    with core.unit() as db:
        admins, carol = fresh(db, world.admins), fresh(db, world.carol)
        alice, bob = fresh(db, world.alice), fresh(db, world.bob)
        two = b.make_profile(db, "Two", tiers=[(1, [], [admins]), (1, [carol], [])])
        pair = b.make_profile(db, "Pair", tiers=[(2, [alice, bob], [])])
        mixed = b.make_profile(db, "Mixed", tiers=[(1, [carol], [admins])])
        db.flush()
        assert approval_sentence(list(two.tiers)) == "Tier 1: 1 of Linux Admins, then tier 2: carol"
        assert approval_sentence(list(pair.tiers)) == "Tier 1: 2 of alice or bob"
        assert approval_sentence(list(mixed.tiers)) == "Tier 1: 1 of Linux Admins or carol"
        assert approval_sentence([]) == "No approval: sessions are scheduled at once."


def test_profile_rules_and_policy_in_words(core: Pamcore, world: World) -> None:
    with core.unit() as db:
        standard = db.get(ConnectionProfile, world.standard.id)
        standard.escalation_minutes = 90
        standard.escalation_user = fresh(db, world.erin)
        standard.ticket_required = True
        rules = dict(profile_rules(standard))
        policy = db.query(AccessPolicy).filter_by(name="db checkout").one()
        sentence = policy_sentence(policy)
    assert rules["Duration"] == (
        "Sessions last up to 1 hour; users are warned 5 minutes before the end."
    )
    assert rules["Extensions"] == "Up to 2 extensions of 30 minutes each."
    assert rules["Approval"] == "No approval: sessions are scheduled at once."
    assert rules["Escalation"] == (
        "A request still waiting after 90 minutes may also be decided by erin."
    )
    assert rules["Request asks for"] == "a ticket."
    assert rules["Password"] == "Shown for 20 seconds, never copied."
    assert sentence == "alice and bob may run Check out root on db01 under Standard."


def test_presenters_load_no_service() -> None:
    """Services import presenters for their audit summaries, so presenters never imports a
    service back (docs/design/proxy-kit.md §7); a fresh interpreter shows what it loads."""
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, pamcore.presenters; "
            "print(*sorted(m for m in sys.modules if m.startswith('pamcore.services')))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.split() == []
