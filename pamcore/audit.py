"""Append-only audit log, chained with HMAC-SHA256 under keys kept outside the database.

Each event's hash is HMAC-SHA256, under the audit key the event names (``key_id``), of its
canonical JSON (id, time, actor, action, target, session, details, key id) and the previous
event's hash. Without the key file nobody can recompute a link, so an edit made in the
database alone always breaks the chain. :func:`append` only stages an event in the
caller's unit of work; when the unit commits, its events are chained in one batch under one
lock of ``audit_head`` (``SELECT ... FOR UPDATE`` on PostgreSQL, the write lock on SQLite),
taken last and held only while the commit writes, so the chain never forks and writers do
not queue behind each other's whole units. :func:`verify_chain` finds an edited row (its
MAC no longer matches), a deleted or inserted row (the next row's ``prev_hash`` breaks), a
deleted tail (the head disagrees), and, given an :class:`Anchor` kept outside, a chain cut
or rebuilt after the anchor.

Events written before the instance had an audit key are plain SHA-256 (``key_id`` NULL).
The key file records the last of them (``@legacy_until``), and only those may be unkeyed.
The design is in ``docs/design/audit-chain.md``.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import Insert, bindparam, func, insert, select, union_all, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.event import listen
from sqlalchemy.orm import Session, SessionTransaction

from pamcore.errors import AuditChainBroken, NotFound, ValidationError
from pamcore.model import AuditEvent, AuditHead
from pamcore.vault import Keyring, MasterKey

if TYPE_CHECKING:
    from pamcore.plugins import Hooks

GENESIS = "0" * 64
#: Keys never accepted in audit details, whatever a caller passes (defence in depth).
FORBIDDEN_DETAIL_KEYS = frozenset({"password", "secret", "private_key", "passphrase", "token"})
#: The key file's attribute naming the last event written before the file existed.
LEGACY_UNTIL = "legacy_until"


class AuditKeyring(Keyring):
    """The audit chain's HMAC keys: the active one MACs new events, every one verifies the
    events that name it. Keys are never removed (old events need them)."""

    HEADER: ClassVar[str] = (
        "# pamcore audit keyring: the HMAC keys of the audit chain. Keep it secret and back it\n"
        "# up apart from the database. '*' marks the key that MACs new events; never remove a\n"
        "# key, old events need it. Manage it with 'pamcore audit rotate-key'.\n"
    )
    NAME: ClassVar[str] = "audit keyring"
    MISSING_HINT: ClassVar[str] = (
        "run 'pamcore init' to create it, or restore it from your backup if this instance "
        "had one (the audit log can be neither written nor verified without it)"
    )

    @classmethod
    def created(cls, key: MasterKey, legacy_until: int) -> AuditKeyring:
        """A new keyring for an instance whose events up to ``legacy_until`` are unkeyed."""
        attributes = {LEGACY_UNTIL: str(legacy_until)} if legacy_until else {}
        return cls(key.key_id, {key.key_id: key}, attributes=attributes)

    @property
    def legacy_until(self) -> int:
        """Events with this id or lower were written before the key existed (0: none)."""
        return int(self.attributes.get(LEGACY_UNTIL, "0"))


def _canonical(event: AuditEvent) -> bytes:
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
    if event.key_id is not None:  # unkeyed (legacy) events keep the body they were hashed as
        body["key_id"] = event.key_id
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def _mac(key: MasterKey, event: AuditEvent) -> str:
    return hmac.new(key.key, _canonical(event), hashlib.sha256).hexdigest()


def _seal_problem(event: AuditEvent, keyring: AuditKeyring) -> str | None:
    """Why ``event``'s own hash is wrong, or ``None``: its MAC under the key it names, or
    plain SHA-256 for an event from before the audit key (and only for those)."""
    if event.key_id is None:
        if event.id > keyring.legacy_until:
            older = (
                f"only events up to {keyring.legacy_until} predate the audit key"
                if keyring.legacy_until
                else "this instance MACs every event"
            )
            return f"not MACed, but {older} (rewritten without the key)"
        expected = hashlib.sha256(_canonical(event)).hexdigest()
    else:
        key = keyring.keys.get(event.key_id)
        if key is None:
            return (
                f"MACed with audit key '{event.key_id}', which is not in the audit keyring; "
                f"restore that key from a backup of the key file"
            )
        expected = _mac(key, event)
    if not hmac.compare_digest(expected, event.hash):
        return f"content edited (action '{event.action}')"
    return None


def check_details(details: dict[str, Any]) -> None:
    """Refuse details named like a secret, whoever records them (defence in depth)."""
    leaked = FORBIDDEN_DETAIL_KEYS & {k.lower() for k in details}
    if leaked:
        raise ValueError(f"audit details may not carry {sorted(leaked)}")


@dataclass
class _Staged:
    """The events a unit of work recorded, waiting for its commit to chain them."""

    keyring: AuditKeyring
    hooks: Hooks | None
    events: list[AuditEvent] = field(default_factory=list)
    #: The savepoint (``begin_nested``) each staged event was recorded in, if any.
    savepoints: list[SessionTransaction | None] = field(default_factory=list)
    chained: list[AuditEvent] = field(default_factory=list)


_STAGED = "pamcore.audit.staged"


def append(
    db: Session,
    *,
    keyring: AuditKeyring,
    actor: str,
    action: str,
    at: dt.datetime,
    target: str = "",
    session_id: int | None = None,
    details: dict[str, Any] | None = None,
    hooks: Hooks | None = None,
) -> AuditEvent:
    """Record one event in the caller's unit of work: it is chained and written when the
    unit commits (with the change it records), and dropped if the unit rolls back. Its
    ``id`` and ``hash`` are set at that commit; ``hooks`` hear of it after the commit."""
    details = dict(details or {})
    check_details(details)
    staged = db.info.get(_STAGED)
    if staged is None:
        staged = db.info[_STAGED] = _Staged(keyring, hooks)
        listen(db, "before_commit", _chain_staged)
        listen(db, "after_commit", _announce_chained)
        listen(db, "after_soft_rollback", _drop_staged)
    staged.events.append(
        AuditEvent(
            at=at,
            actor=actor,
            action=action,
            target=target,
            session_id=session_id,
            details=details,
        )
    )
    staged.savepoints.append(db.get_nested_transaction())
    return staged.events[-1]


def _chain_staged(db: Session) -> None:
    """Chain the unit's events in one batch: one head lock per unit, taken after every other
    write of the unit is flushed (one lock order, so no deadlock) and released by this same
    commit. The head is held only for the chain's own write: one statement on PostgreSQL."""
    staged: _Staged = db.info[_STAGED]
    if not staged.events:
        return
    db.flush()
    key = staged.keyring.active
    last_id, last_hash = _locked_head(db)
    for event in staged.events:
        event.id, event.prev_hash, event.key_id = last_id + 1, last_hash, key.key_id
        event.hash = _mac(key, event)
        last_id, last_hash = event.id, event.hash
    _write_chain(db, staged.events)
    staged.chained += staged.events
    staged.events, staged.savepoints = [], []


#: Events a unit writes in the one statement that also moves the head (PostgreSQL); a
#: larger unit inserts them first and moves the head in a statement of its own.
ONE_STATEMENT_EVENTS = 500
_COLUMNS = tuple(column.key for column in AuditEvent.__table__.columns)


def _write_chain(db: Session, events: list[AuditEvent]) -> None:
    """Insert the chained ``events`` and move the head to the last of them."""
    rows = [{column: getattr(event, column) for column in _COLUMNS} for event in events]
    head = {"head_id": events[-1].id, "head_hash": events[-1].hash, "added": len(events)}
    if db.get_bind().dialect.name == "postgresql" and len(rows) <= ONE_STATEMENT_EVENTS:
        numbered = {f"e{i}_{k}": v for i, row in enumerate(rows) for k, v in row.items()}
        db.execute(_insert_and_move(len(rows)), numbered | head)
        return
    db.execute(insert(AuditEvent), rows)
    db.execute(_MOVE_HEAD, head)


_MOVE_HEAD = (
    update(AuditHead)
    .where(AuditHead.id == 1)
    .values(
        last_id=bindparam("head_id"),
        last_hash=bindparam("head_hash"),
        count=AuditHead.count + bindparam("added"),
    )
)


@functools.lru_cache(maxsize=16)
def _insert_and_move(count: int) -> Insert:
    """``WITH moved AS (UPDATE audit_head ...) INSERT INTO audit_events SELECT ... UNION ALL
    SELECT ...`` for ``count`` events: one round trip while the head is locked. Named
    parameters, not a multi-row VALUES (which SQLAlchemy compiles anew each time), so the
    statement compiles once per size."""
    table = AuditEvent.__table__
    rows = [
        select(*(bindparam(f"e{i}_{column.key}", type_=column.type) for column in table.c))
        for i in range(count)
    ]
    events = rows[0] if count == 1 else union_all(*rows)
    return insert(table).from_select(list(table.c), events).add_cte(_MOVE_HEAD.cte("moved"))


def _locked_head(db: Session) -> tuple[int, str]:
    """The chain's tip (last id, last hash), locked until the unit commits."""
    locked = select(AuditHead.last_id, AuditHead.last_hash).where(AuditHead.id == 1)
    head = db.execute(locked.with_for_update()).one_or_none()
    if head is None:  # the first event ever: of two first writers, one creates the head
        dialect = db.get_bind().dialect.name
        insert_head = postgresql.insert if dialect == "postgresql" else sqlite.insert
        db.execute(
            insert_head(AuditHead)
            .values(id=1, last_id=0, last_hash=GENESIS, count=0)
            .on_conflict_do_nothing()
        )
        head = db.execute(locked.with_for_update()).one()
    return head.last_id, head.last_hash


def _announce_chained(db: Session) -> None:
    staged: _Staged = db.info[_STAGED]
    chained, staged.chained = staged.chained, []
    if staged.hooks is not None:
        for event in chained:
            staged.hooks.audit_event(event)


def _drop_staged(db: Session, rolled_back: SessionTransaction) -> None:
    """Forget what the rollback undid: everything, or what was recorded in the savepoint."""
    staged: _Staged = db.info[_STAGED]
    if not rolled_back.nested:
        staged.events, staged.savepoints, staged.chained = [], [], []
        return
    kept = [
        (event, savepoint)
        for event, savepoint in zip(staged.events, staged.savepoints, strict=True)
        if not _within(savepoint, rolled_back)
    ]
    staged.events = [event for event, _ in kept]
    staged.savepoints = [savepoint for _, savepoint in kept]


def _within(transaction: SessionTransaction | None, savepoint: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is savepoint:
            return True
        transaction = transaction.parent
    return False


@dataclass(frozen=True)
class ChainProblem:
    event_id: int | None
    problem: str

    def __str__(self) -> str:
        where = f"event {self.event_id}" if self.event_id is not None else "chain"
        return f"{where}: {self.problem}"


@dataclass(frozen=True)
class Anchor:
    """An event id and its hash, kept outside pamcore: whoever later rebuilds or cuts the
    chain (even with the key) cannot make that event hash the same again."""

    event_id: int
    hash: str

    PREFIX: ClassVar[str] = "pamcore-audit-anchor"
    _LINE: ClassVar[re.Pattern[str]] = re.compile(
        r"pamcore-audit-anchor event=([1-9][0-9]{0,18}) hash=([0-9a-f]{64})"
    )

    def __str__(self) -> str:
        return f"{self.PREFIX} event={self.event_id} hash={self.hash}"

    @classmethod
    def parse(cls, line: str) -> Anchor:
        """The line :meth:`__str__` prints (surrounding spaces, as pasted, are ignored)."""
        found = cls._LINE.fullmatch(line.strip())
        if found is None:
            raise ValidationError(
                "anchor",
                f"expected the line 'pamcore audit anchor' printed: '{cls.PREFIX} "
                f"event=N hash=<64 hex digits>'",
            )
        return cls(int(found[1]), found[2])


def current_anchor(db: Session, keyring: AuditKeyring) -> Anchor:
    """The chain head as an anchor, once its last event's own MAC checks (one HMAC: an
    anchor is cheap to take often; ``verify`` checks the rest)."""
    head = db.get(AuditHead, 1)
    if head is None or head.last_id == 0:
        raise NotFound("the audit log has no events yet: nothing to anchor")
    event = db.get(AuditEvent, head.last_id)
    if event is None or event.hash != head.last_hash or _seal_problem(event, keyring):
        raise AuditChainBroken(
            f"the chain head (event {head.last_id}) does not match its event; "
            f"run 'pamcore audit verify' before taking an anchor"
        )
    return Anchor(event.id, event.hash)


def verify_chain(
    db: Session, keyring: AuditKeyring, anchor: Anchor | None = None, batch: int = 5000
) -> tuple[int, list[ChainProblem]]:
    """Walk the whole chain; returns (events checked, problems). Empty problems = intact."""
    problems: list[ChainProblem] = []
    prev_hash, prev_id, checked = GENESIS, 0, 0
    last_seen = 0
    while True:
        rows = db.scalars(
            select(AuditEvent).where(AuditEvent.id > last_seen).order_by(AuditEvent.id).limit(batch)
        ).all()
        if not rows:
            break
        for event in rows:
            checked += 1
            if event.id != prev_id + 1:
                missing = (
                    f"{prev_id + 1}"
                    if event.id == prev_id + 2
                    else (f"{prev_id + 1}-{event.id - 1}")
                )
                problems.append(ChainProblem(event.id, f"event(s) {missing} deleted"))
            elif event.prev_hash != prev_hash:
                problems.append(
                    ChainProblem(event.id, "previous-hash link broken (row inserted or replaced)")
                )
            seal = _seal_problem(event, keyring)
            if seal:
                problems.append(ChainProblem(event.id, seal))
            prev_hash, prev_id = event.hash, event.id
        last_seen = rows[-1].id
    head = db.get(AuditHead, 1)
    if head is not None:
        if head.last_id > prev_id:
            problems.append(
                ChainProblem(None, f"events {prev_id + 1}-{head.last_id} deleted from the end")
            )
        elif head.last_id == prev_id and head.last_hash != prev_hash:
            problems.append(ChainProblem(prev_id, "last event does not match the chain head"))
        elif head.last_id < prev_id:
            problems.append(ChainProblem(head.last_id + 1, "events appended outside pamcore"))
    elif checked:
        problems.append(ChainProblem(None, "chain head missing"))
    if anchor is not None:
        problems += _anchor_problems(db, anchor)
    return checked, problems


def _anchor_problems(db: Session, anchor: Anchor) -> list[ChainProblem]:
    event = db.get(AuditEvent, anchor.event_id)
    if event is None:
        return [ChainProblem(anchor.event_id, "the anchored event is gone (chain cut after it)")]
    if not hmac.compare_digest(event.hash, anchor.hash):
        return [ChainProblem(anchor.event_id, "differs from the anchor (chain rebuilt since)")]
    return []


def count_events(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(AuditEvent)) or 0
