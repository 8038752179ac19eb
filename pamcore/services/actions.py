"""Running an activity's pre- and post-session actions through the registered action types."""

from __future__ import annotations

import logging
import queue
import re
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, object_session

from pamcore import metrics
from pamcore.audit import check_details
from pamcore.core import Pamcore
from pamcore.errors import ActionFailed, ValidationError
from pamcore.model import (
    ActionPhase,
    Activity,
    ActivitySession,
    CompletedAction,
    LoginMode,
)
from pamcore.passwords import generate_password
from pamcore.registry import ActionContext

log = logging.getLogger(__name__)

ACTOR = "system:actions"

TEMPLATE_FIELDS = {"user", "random", "activity"}
_FIELD = re.compile(r"\{([^{}]*)\}")
#: What a POSIX / Windows / IOS local account name may contain; templates must produce it.
_ACCOUNT = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")


def check_login_template(template: str) -> None:
    """Reject a template that names unknown fields or cannot make a valid account name."""
    unknown = set(_FIELD.findall(template)) - TEMPLATE_FIELDS
    if unknown:
        raise ValidationError(
            "login_template",
            f"unknown field(s) {', '.join('{' + u + '}' for u in sorted(unknown))}; "
            f"use {{user}}, {{random}}, {{activity}}",
        )
    sample = render_login_template(template, "user", "activity")
    if not _ACCOUNT.fullmatch(sample):
        raise ValidationError(
            "login_template", f"produces '{sample}', which is not a valid account name"
        )


def render_login_template(template: str, username: str, activity_name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", activity_name.lower()).strip("-")
    user = re.sub(r"[^a-z0-9_.-]+", "", username.lower())
    name = template.format(user=user, random=secrets.token_hex(3), activity=slug)
    return name[:32]


def check_action_types(core: Pamcore, activity: Activity) -> None:
    """An activity naming an action type no plugin registered fails now, not at start time."""
    known = core.hooks.actions()
    for action in activity.actions:
        if action.action_type not in known:
            raise ValidationError(
                "action",
                f"action type '{action.action_type}' is not installed "
                f"(known: {', '.join(sorted(known)) or 'none'})",
            )


def assign_login_account(core: Pamcore, db: Session, session: ActivitySession) -> str | None:
    """Choose the session's login account; returns a new ephemeral password, if any."""
    activity = session.activity
    if activity.login_mode == LoginMode.EPHEMERAL and activity.kind.value == "resource":
        session.login_account = render_login_template(
            activity.login_template, session.requester.username, activity.name
        )
        password = generate_password()
        session.login_secret = core.vault.store(db, password)
        return password
    credential = activity.credential
    if credential is None:
        raise ActionFailed(
            f"activity '{activity.name}' has no login credential; an administrator must set one"
        )
    session.login_credential = credential
    session.login_account = credential.username
    return None


def run_actions(
    core: Pamcore,
    session: ActivitySession,
    phase: ActionPhase,
    password: str | None,
    *,
    best_effort: bool = False,
    records: ActionRecords | None = None,
    finished: set[tuple[int, int]] | None = None,
) -> list[str]:
    """Run the phase's actions for every resource, in order, outside any write transaction.

    Each action that finishes is recorded in one unit with the audit events it recorded
    (through ``records`` when threads share one), and skipped when the phase runs again (a
    claim taken over from a process that died), so no action runs twice. Raises
    :class:`ActionFailed` on the first failure, unless ``best_effort`` (removals, cleanup
    after a failure), where every action runs and the failures are returned. ``finished``
    is :func:`finished_actions` of the session, when the caller loaded it for many at once.
    """
    known = core.hooks.actions()
    failures: list[str] = []
    if finished is None:
        db = object_session(session)
        assert db is not None, "run_actions needs the session loaded in a (read) unit"
        finished = finished_actions(db, [session.id]).get(session.id, set())
    for resource in session.resources:
        for action in session.activity.actions_for(phase):
            if (resource.id, action.id) in finished:
                log.info(
                    "session %s: %s-session action '%s' on %s finished before; not run again",
                    session.id,
                    phase.value,
                    action.action_type,
                    resource.name,
                )
                continue
            events: list[tuple[str, dict[str, Any]]] = []
            action_type = known.get(action.action_type)
            labels = {"action_type": action.action_type, "phase": phase.value}
            started = time.monotonic()
            try:
                if action_type is None:
                    raise ActionFailed(f"action type '{action.action_type}' is not installed")
                action_type.run(
                    ActionContext(
                        core=core,
                        session=session,
                        resource=resource,
                        login_account=session.login_account,
                        login_password=password,
                        params=dict(action.params),
                        now=core.now(),
                        audit=_collector(session, events),
                    )
                )
            except Exception as exc:
                metrics.ACTION_FAILURES.labels(**labels).inc()
                _record(
                    core,
                    ActionRecord(session.id, resource.id, resource.name, events, None),
                    records,
                )
                message = (
                    f"{phase.value}-session action '{action.action_type}' failed on "
                    f"{resource.name}: {exc}"
                )
                log.warning("session %s: %s", session.id, message)
                if not best_effort:
                    raise ActionFailed(message) from exc
                failures.append(message)
            else:
                record = ActionRecord(session.id, resource.id, resource.name, events, action.id)
                _record(core, record, records)
            finally:
                metrics.ACTION_DURATION.labels(**labels).observe(time.monotonic() - started)
    return failures


def finished_actions(db: Session, session_ids: list[int]) -> dict[int, set[tuple[int, int]]]:
    """session id -> the (resource id, action id) pairs of its actions that finished."""
    finished: dict[int, set[tuple[int, int]]] = {}
    rows = db.execute(
        select(
            CompletedAction.session_id, CompletedAction.resource_id, CompletedAction.action_id
        ).where(CompletedAction.session_id.in_(session_ids))
    )
    for session_id, resource_id, action_id in rows:
        finished.setdefault(session_id, set()).add((resource_id, action_id))
    return finished


def _collector(
    session: ActivitySession, events: list[tuple[str, dict[str, Any]]]
) -> Callable[..., None]:
    """The ``audit`` an action calls: its events wait for the unit that records the action."""

    def audit(name: str, **details: Any) -> None:
        details.setdefault("account", session.login_account)
        check_details(details)  # refused now, in the action, as an append would
        events.append((name, details))

    return audit


@dataclass
class ActionRecord:
    """What one action leaves: its audit events, and (if it finished) that it did."""

    session_id: int
    resource_id: int
    target: str
    events: list[tuple[str, dict[str, Any]]]
    finished_action: int | None


def _write_records(core: Pamcore, db: Session, records: list[ActionRecord]) -> None:
    """Record actions in ``db``'s unit: their audit events, and in one statement which of
    them finished."""
    for record in records:
        for name, details in record.events:
            core.audit(
                db, ACTOR, name, target=record.target, session_id=record.session_id, **details
            )
    finished = [
        {
            "session_id": record.session_id,
            "resource_id": record.resource_id,
            "action_id": record.finished_action,
            "finished_at": core.now(),
        }
        for record in records
        if record.finished_action is not None
    ]
    if finished:
        db.execute(insert(CompletedAction), finished)


class ActionRecords:
    """Writes the records of actions that several threads run at once (the scheduler's
    provisioning threads), many per unit: each thread still waits until its own record
    committed, as if alone, but one commit and one audit-head lock serve every record that
    arrived meanwhile, instead of each thread queueing for the write lock in turn."""

    def __init__(self, core: Pamcore) -> None:
        self.core = core
        self._queue: queue.SimpleQueue[tuple[ActionRecord, Future[None]] | None] = (
            queue.SimpleQueue()
        )
        self._writer = threading.Thread(target=self._write_batches, name="action records")

    def __enter__(self) -> ActionRecords:
        self._writer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._queue.put(None)
        self._writer.join()

    def write(self, record: ActionRecord) -> None:
        """Returns once ``record`` is committed; raises what its unit raised."""
        done: Future[None] = Future()
        self._queue.put((record, done))
        done.result()

    def _write_batches(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            batch = []
            while item is not None:
                batch.append(item)
                if self._queue.empty():
                    break
                item = self._queue.get()
            stopping = item is None
            if batch:
                self._commit(batch)

    def _commit(self, batch: list[tuple[ActionRecord, Future[None]]]) -> None:
        try:
            with self.core.unit() as db:
                _write_records(self.core, db, [record for record, _ in batch])
        except Exception as exc:
            if len(batch) > 1:  # one bad record must not fail the others: each alone
                for item in batch:
                    self._commit([item])
            else:
                batch[0][1].set_exception(exc)
            return
        for _, done in batch:
            done.set_result(None)


def _record(core: Pamcore, record: ActionRecord, records: ActionRecords | None) -> None:
    if not record.events and record.finished_action is None:
        return
    if records is not None:
        records.write(record)
        return
    with core.unit() as db:
        _write_records(core, db, [record])
