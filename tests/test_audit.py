"""The hash-chained audit log: verify catches an edit, a deletion, an insertion, a cut tail."""

from __future__ import annotations

from itertools import pairwise

import pytest
from sqlalchemy import delete, select, update

from pamcore import audit, hookimpl
from pamcore.core import Pamcore
from pamcore.model import AuditEvent, AuditHead


def write_events(core: Pamcore, n: int = 5) -> None:
    for i in range(n):
        with core.unit() as db:
            core.audit(db, "alice", "test.event", target=f"t{i}", index=i)


def verify(core: Pamcore) -> tuple[int, list[str]]:
    with core.reader() as db:
        checked, problems = audit.verify_chain(db, batch=2)  # small batches cross pages
        return checked, [str(p) for p in problems]


def test_intact_chain_verifies(core: Pamcore) -> None:
    write_events(core)
    assert verify(core) == (5, [])
    with core.reader() as db:
        events = db.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        assert events[0].prev_hash == audit.GENESIS
        assert all(b.prev_hash == a.hash for a, b in pairwise(events))


def test_edit_is_caught_and_named(core: Pamcore) -> None:
    write_events(core)
    with core.unit() as db:
        db.execute(update(AuditEvent).where(AuditEvent.id == 3).values(actor="mallory"))
    assert verify(core)[1] == ["event 3: content edited (action 'test.event')"]


def test_details_edit_is_caught(core: Pamcore) -> None:
    write_events(core)
    with core.unit() as db:
        db.execute(update(AuditEvent).where(AuditEvent.id == 2).values(details={"index": 99}))
    assert verify(core)[1] == ["event 2: content edited (action 'test.event')"]


def test_deletion_is_caught_and_named(core: Pamcore) -> None:
    write_events(core)
    with core.unit() as db:
        db.execute(delete(AuditEvent).where(AuditEvent.id == 2))
    assert verify(core)[1] == ["event 3: event(s) 2 deleted"]


def test_deleted_tail_is_caught(core: Pamcore) -> None:
    write_events(core)
    with core.unit() as db:
        db.execute(delete(AuditEvent).where(AuditEvent.id >= 4))
    assert verify(core)[1] == ["chain: events 4-5 deleted from the end"]


def test_rewritten_row_with_recomputed_hash_is_caught(core: Pamcore) -> None:
    """An attacker who recomputes the edited row's hash still breaks the next link."""
    write_events(core)
    with core.unit() as db:
        event = db.get(AuditEvent, 3)
        event.actor = "mallory"
        event.hash = audit.compute_hash(event)
    assert verify(core)[1] == ["event 4: previous-hash link broken (row inserted or replaced)"]


def test_secrets_refused_in_details(core: Pamcore) -> None:
    with pytest.raises(ValueError, match="password"), core.unit() as db:
        core.audit(db, "alice", "oops", password="hunter2")


def test_events_reach_plugins_after_append(core: Pamcore) -> None:
    seen: list[tuple[int, str]] = []

    class Siem:
        @hookimpl
        def pamcore_audit_event(self, event):
            seen.append((event.id, event.action))

    class Broken:
        @hookimpl
        def pamcore_audit_event(self, event):
            raise RuntimeError("SIEM down")

    names = [core.plugins.register(Siem(), "siem"), core.plugins.register(Broken(), "broken")]
    try:
        write_events(core, 2)
    finally:
        for name in names:
            core.plugins.unregister(name)
    assert seen == [(1, "test.event"), (2, "test.event")]
    assert verify(core) == (2, [])  # a failing forwarder loses nothing
    assert any(f.name == "broken" for f in core.plugins.failures)


def test_head_tracks_the_tip(core: Pamcore) -> None:
    write_events(core, 3)
    with core.reader() as db:
        head = db.get(AuditHead, 1)
        last = db.get(AuditEvent, 3)
        assert (head.last_id, head.last_hash, head.count) == (3, last.hash, 3)
