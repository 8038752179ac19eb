"""The keyed audit chain: verify catches an edit (even re-chained with SHA-256), a deletion,
an insertion, a cut tail (with an anchor); rotation, lost keys and pre-key instances."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections.abc import Iterator
from itertools import pairwise

import pytest
from sqlalchemy import delete, select, update

from pamcore import audit, hookimpl
from pamcore.core import Pamcore
from pamcore.errors import ConfigurationError, NotFound, PolicyDenied, ValidationError, VaultError
from pamcore.model import AuditEvent, AuditHead, Role
from pamcore.services import audit_keys, audit_log
from pamcore.services.common import CONSOLE
from pamcore.testing import builders as b
from pamcore.vault import Keyring, MasterKey, read_keyring, write_keyring


def write_events(core: Pamcore, n: int = 5) -> None:
    for i in range(n):
        with core.unit() as db:
            core.audit(db, "alice", "test.event", target=f"t{i}", index=i)


def verify(core: Pamcore) -> tuple[int, list[str]]:
    with core.reader() as db:
        checked, problems = audit.verify_chain(db, core.audit_keys.keyring, batch=2)  # pages
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
        event.actor, event.key_id = "mallory", None
        event.hash = plain_sha256(event)
    assert verify(core)[1] == [
        "event 3: not MACed, but this instance MACs every event (rewritten without the key)",
        "event 4: previous-hash link broken (row inserted or replaced)",
    ]


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


@pytest.fixture
def announced(core: Pamcore) -> Iterator[list[tuple[int, str]]]:
    """(id, action) of each event ``pamcore_audit_event`` hears of, in order."""
    seen: list[tuple[int, str]] = []

    class Siem:
        @hookimpl
        def pamcore_audit_event(self, event):
            seen.append((event.id, event.action))

    name = core.plugins.register(Siem(), "siem")
    yield seen
    core.plugins.unregister(name)


def test_a_units_events_are_chained_together_when_it_commits(
    core: Pamcore, announced: list[tuple[int, str]]
) -> None:
    """Appends only stage: the unit's events get their ids and links in one batch at commit,
    and plugins hear of them after it."""
    write_events(core, 1)
    with core.unit() as db:
        staged = [core.audit(db, "alice", "test.batch", index=i) for i in range(3)]
        assert [e.id for e in staged] == [None] * 3
        assert announced == [(1, "test.event")]
    assert [e.id for e in staged] == [2, 3, 4]
    assert announced == [(1, "test.event")] + [(i, "test.batch") for i in (2, 3, 4)]
    assert verify(core) == (4, [])


def test_events_of_a_rolled_back_unit_are_neither_written_nor_announced(
    core: Pamcore, announced: list[tuple[int, str]]
) -> None:
    with pytest.raises(RuntimeError), core.unit() as db:
        core.audit(db, "alice", "test.undone")
        raise RuntimeError("the change failed")
    write_events(core, 1)
    assert announced == [(1, "test.event")]
    assert verify(core) == (1, [])


def test_a_rolled_back_savepoint_drops_only_its_own_events(
    core: Pamcore, announced: list[tuple[int, str]]
) -> None:
    with core.unit() as db:
        core.audit(db, "alice", "test.before")
        with pytest.raises(RuntimeError), db.begin_nested():
            core.audit(db, "alice", "test.undone")
            raise RuntimeError("the inner change failed")
        core.audit(db, "alice", "test.after")
    assert announced == [(1, "test.before"), (2, "test.after")]
    assert verify(core) == (2, [])


def test_concurrent_writers_keep_one_chain(core: Pamcore) -> None:
    """Threads committing units of several events at once: one gapless chain, each unit's
    events consecutive (a unit's batch is chained under one head lock)."""

    def writer(n: int) -> None:
        for unit in range(10):
            with core.unit() as db:
                for i in range(3):
                    core.audit(db, f"writer{n}", "test.concurrent", target=f"{unit}", index=i)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert verify(core) == (120, [])
    with core.reader() as db:
        events = db.execute(
            select(AuditEvent.actor, AuditEvent.target, AuditEvent.details).order_by(AuditEvent.id)
        ).all()
    for first in range(0, 120, 3):
        batch = events[first : first + 3]
        assert [details["index"] for _, _, details in batch] == [0, 1, 2]
        assert len({(actor, target) for actor, target, _ in batch}) == 1


def test_head_tracks_the_tip(core: Pamcore) -> None:
    write_events(core, 3)
    with core.reader() as db:
        head = db.get(AuditHead, 1)
        last = db.get(AuditEvent, 3)
        assert (head.last_id, head.last_hash, head.count) == (3, last.hash, 3)


def test_a_unit_too_large_for_one_statement_chains_the_same(core: Pamcore) -> None:
    """On PostgreSQL a unit's events and the head's move are one statement up to
    ``ONE_STATEMENT_EVENTS`` events; a larger unit (a scheduler tick settling many sessions)
    inserts its events first and moves the head after: one chain and one head either way."""
    size = audit.ONE_STATEMENT_EVENTS + 1
    write_events(core, 1)
    with core.unit() as db:
        for i in range(size):
            core.audit(db, "system:scheduler", "test.large", index=i)
    write_events(core, 2)
    with core.reader() as db:
        head = db.get(AuditHead, 1)
        assert (head.last_id, head.count) == (size + 3, size + 3)
        checked, problems = audit.verify_chain(db, core.audit_keys.keyring)
    assert (checked, problems) == (size + 3, [])


def plain_sha256(event: AuditEvent) -> str:
    """What anyone can compute without a key: SHA-256 of the canonical JSON of the row."""
    body = {
        "id": event.id,
        "at": event.at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "actor": event.actor,
        "action": event.action,
        "target": event.target,
        "session_id": event.session_id,
        "details": event.details,
        "prev": event.prev_hash,
    }
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()


def test_edit_rechained_with_plain_sha256_is_caught(core: Pamcore) -> None:
    """An attacker with write access to the database edits event 3 and recomputes every
    following link and the head with SHA-256: without the audit key the chain still breaks."""
    write_events(core)
    with core.unit() as db:
        events = db.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        events[2].actor = "mallory"
        prev = events[1].hash
        for event in events[2:]:
            event.prev_hash, event.key_id = prev, None
            event.hash = prev = plain_sha256(event)
            db.flush()
        head = db.get(AuditHead, 1)
        head.last_hash = prev
    checked, problems = verify(core)
    assert checked == 5 and problems[0].startswith("event 3: ")


def test_rotation_keeps_the_chain_verifiable(core: Pamcore) -> None:
    """Events name the key that MACed them: after a rotation, old and new events verify,
    and the old key stays in the file for them."""
    write_events(core, 2)
    old = core.audit_keys.keyring.active_id
    rotation = audit_keys.rotate_key(core, CONSOLE)
    write_events(core, 2)
    assert rotation.old_key == old != rotation.new_key
    keyring, _ = read_keyring(core.config.audit_key_path, audit.AuditKeyring)
    assert set(keyring.keys) == {old, rotation.new_key} and keyring.active_id == rotation.new_key
    assert oct(core.config.audit_key_path.stat().st_mode & 0o777) == "0o600"
    with core.reader() as db:
        events = db.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        assert [(e.action, e.key_id) for e in events] == [
            ("test.event", old),
            ("test.event", old),
            ("audit.key_rotated", rotation.new_key),
            ("test.event", rotation.new_key),
            ("test.event", rotation.new_key),
        ]
        assert events[2].details == {"old_key": old, "new_key": rotation.new_key}
    assert verify(core) == (5, [])
    with core.unit() as db:
        auditor = b.make_user(db, "ivy", Role.AUDITOR)
    with pytest.raises(PolicyDenied, match="only an administrator may rotate the audit key"):
        audit_keys.rotate_key(core, auditor)


def test_an_event_under_a_lost_key_is_named(core: Pamcore) -> None:
    write_events(core, 2)
    audit_keys.rotate_key(core, CONSOLE)
    keyring = core.audit_keys.keyring
    first = next(k for k in keyring.keys if k != keyring.active_id)
    write_keyring(core.config.audit_key_path, keyring.without(first))
    problems = verify(core)[1]
    assert problems[0] == (
        f"event 1: MACed with audit key '{first}', which is not in the audit keyring; "
        f"restore that key from a backup of the key file"
    )


def test_missing_audit_key_file_is_a_clear_error(core: Pamcore) -> None:
    path = core.config.audit_key_path
    key_text = path.read_text()
    path.unlink()
    with pytest.raises(VaultError) as refused, core.unit() as db:
        core.audit(db, "alice", "test.event")
    message = str(refused.value)
    assert f"no audit keyring at {path}; run 'pamcore init' to create it" in message
    assert "restore it from your backup" in message
    for line in key_text.splitlines():
        if not line.startswith("#"):  # no key material in the message
            assert line.partition(":")[2] not in message
    with core.reader() as db:
        assert db.scalar(select(AuditEvent)) is None


def test_anchor_round_trip(core: Pamcore) -> None:
    with core.reader() as db, pytest.raises(NotFound, match="no events yet"):
        audit_log.take_anchor(core, db, CONSOLE)
    write_events(core, 3)
    with core.reader() as db:
        anchor = audit_log.take_anchor(core, db, CONSOLE)
        third = db.get(AuditEvent, 3).hash
    assert (anchor.event_id, anchor.hash) == (3, third)
    line = str(anchor)
    assert line == f"pamcore-audit-anchor event=3 hash={third}" and "\n" not in line
    assert audit.Anchor.parse(f"  {line}\n") == anchor
    for bad in ("", "pamcore-audit-anchor event=3", line.replace("event=3", "event=x")):
        with pytest.raises(ValidationError, match="pamcore audit anchor"):
            audit.Anchor.parse(bad)
    write_events(core, 2)  # the chain grows past the anchor: still fine
    with core.reader() as db:
        assert audit_log.check_chain(core, db, CONSOLE, anchor) == (5, [])


def test_a_tail_deleted_after_an_anchor_is_caught(core: Pamcore) -> None:
    """Deleting the newest events and moving the head back leaves a consistent chain;
    only the anchor kept outside shows what is gone."""
    write_events(core, 5)
    with core.reader() as db:
        anchor = audit_log.take_anchor(core, db, CONSOLE)
    with core.unit() as db:
        db.execute(delete(AuditEvent).where(AuditEvent.id >= 4))
        third = db.get(AuditEvent, 3)
        db.execute(update(AuditHead).values(last_id=3, last_hash=third.hash, count=3))
    assert verify(core) == (3, [])  # what the database alone can tell
    with core.reader() as db:
        problems = audit_log.check_chain(core, db, CONSOLE, anchor)[1]
    assert [str(p) for p in problems] == [
        "event 5: the anchored event is gone (chain cut after it)"
    ]


def test_a_chain_rebuilt_with_the_key_differs_from_the_anchor(core: Pamcore) -> None:
    """Someone who got the key later rewrites event 2 and re-MACs everything after it."""
    write_events(core, 3)
    with core.reader() as db:
        anchor = audit_log.take_anchor(core, db, CONSOLE)
    with core.unit() as db:
        db.execute(delete(AuditEvent).where(AuditEvent.id >= 2))
        first = db.get(AuditEvent, 1)
        db.execute(update(AuditHead).values(last_id=1, last_hash=first.hash, count=1))
    for i in range(2):  # the rebuilt events 2 and 3, MACed with the real key
        with core.unit() as db:
            core.audit(db, "mallory", "test.event", target=f"forged{i}")
    assert verify(core) == (3, [])
    with core.reader() as db:
        problems = audit_log.check_chain(core, db, CONSOLE, anchor)[1]
    assert [str(p) for p in problems] == ["event 3: differs from the anchor (chain rebuilt since)"]


def write_unkeyed_events(core: Pamcore, n: int) -> None:
    """Events as pamcore wrote them before audit keys: plain SHA-256, no key id."""
    with core.unit() as db:
        prev = audit.GENESIS
        for i in range(1, n + 1):
            event = AuditEvent(
                id=i,
                at=core.now(),
                actor="alice",
                action="old.event",
                target=f"t{i}",
                session_id=None,
                details={"index": i},
                prev_hash=prev,
                key_id=None,
            )
            event.hash = prev = plain_sha256(event)
            db.add(event)
            db.flush()
        db.add(AuditHead(id=1, last_id=n, last_hash=prev, count=n))


def test_an_instance_from_before_audit_keys_keeps_its_events_verifiable(core: Pamcore) -> None:
    """The key created on an instance with events records the last unkeyed one; only those
    may be plain SHA-256, and the first keyed event's MAC covers the link to them."""
    core.config.audit_key_path.unlink()
    write_unkeyed_events(core, 3)
    made = audit_keys.ensure_key(core)
    assert (made.created, made.legacy_until) == (True, 3)
    assert "@legacy_until=3\n" in core.config.audit_key_path.read_text()
    assert audit_keys.ensure_key(core) == audit_keys.Created(False, 3)  # kept
    write_events(core, 2)
    assert verify(core) == (5, [])

    with core.unit() as db:  # a keyed event turned into a legacy-looking one is refused
        fifth = db.get(AuditEvent, 5)
        fifth.actor, fifth.key_id = "mallory", None
        fifth.hash = plain_sha256(fifth)
        db.execute(update(AuditHead).values(last_hash=fifth.hash))
    assert verify(core)[1] == [
        "event 5: not MACed, but only events up to 3 predate the audit key "
        "(rewritten without the key)"
    ]


def test_a_legacy_event_edited_and_rechained_breaks_the_first_keyed_link(
    core: Pamcore,
) -> None:
    core.config.audit_key_path.unlink()
    write_unkeyed_events(core, 3)
    audit_keys.ensure_key(core)
    write_events(core, 1)
    with core.unit() as db:
        second, third = db.get(AuditEvent, 2), db.get(AuditEvent, 3)
        second.actor = "mallory"
        second.hash = plain_sha256(second)
        db.flush()
        third.prev_hash = second.hash
        third.hash = plain_sha256(third)
    assert verify(core)[1] == ["event 4: previous-hash link broken (row inserted or replaced)"]


def test_a_lost_key_file_is_not_silently_replaced(core: Pamcore) -> None:
    write_events(core, 2)
    path = core.config.audit_key_path
    path.unlink()
    with pytest.raises(ConfigurationError, match=f"restore {path} from your backup"):
        audit_keys.ensure_key(core)
    assert not path.exists()


def test_keyring_attributes_round_trip_and_vault_files_are_unchanged() -> None:
    key = MasterKey.generate()
    ring = audit.AuditKeyring.created(key, 42)
    assert audit.AuditKeyring.parse(ring.serialize(), "test") == ring
    assert ring.legacy_until == 42 and audit.AuditKeyring.created(key, 0).legacy_until == 0
    assert "@" not in Keyring.of(key).serialize()  # the vault's file is as before
