"""Claims: which process runs a session's actions right now.

A claim names its owner (``worker_name()``, ``host:pid:random``, one per process) and
carries a heartbeat (core clock) that the owner refreshes while it works. Another process takes the
claim over once the heartbeat is older than ``claim_timeout`` (the owner was killed, or lost
the database), or at once when the owner was a process of this host that no longer exists
(a restarted ``pamcore run`` resumes the work its predecessor left). The taker resumes after
the last action the owner finished (``completed_actions``), so no action runs twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import ColumnElement, select, update

from pamcore.core import Pamcore
from pamcore.lifecycle import Status
from pamcore.model import ActivitySession
from pamcore.services.common import this_host

log = logging.getLogger(__name__)


def stake(session: ActivitySession, worker: str, now: dt.datetime) -> None:
    session.claimed_by = worker
    session.claim_heartbeat_at = now


def release(session: ActivitySession) -> None:
    session.claimed_by = session.claim_heartbeat_at = None


def abandoned(core: Pamcore) -> ColumnElement[bool]:
    """Claims another process may take over now: no heartbeat for ``claim_timeout`` seconds,
    or an owner on this host that is no longer running."""
    cutoff = core.now() - dt.timedelta(seconds=core.config.claim_timeout)
    stale = ActivitySession.claim_heartbeat_at.is_(None) | (
        ActivitySession.claim_heartbeat_at < cutoff
    )
    dead = _dead_local_owners(core)
    return stale | ActivitySession.claimed_by.in_(dead) if dead else stale


def _dead_local_owners(core: Pamcore) -> list[str]:
    host = f"{this_host()}:"
    with core.reader() as db:
        owners = db.scalars(
            select(ActivitySession.claimed_by)
            .where(
                ActivitySession.status.in_([Status.PROVISIONING.value, Status.ENDING.value]),
                ActivitySession.claimed_by.startswith(host, autoescape=True),
            )
            .distinct()
        ).all()
    return [o for o in owners if o is not None and not _running(o.removeprefix(host))]


def _running(pid_and_token: str) -> bool:
    pid = pid_and_token.split(":", 1)[0]
    if not pid.isdigit():
        return True  # not a node id we wrote: leave it to the heartbeat timeout
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def beat(core: Pamcore, worker: str) -> int:
    """Refresh the heartbeat of every claim ``worker`` holds; returns how many. Rows another
    unit is writing (settling them) are skipped on PostgreSQL rather than waited for."""
    with core.unit() as db:
        query = (
            select(ActivitySession.id)
            .where(ActivitySession.claimed_by == worker)
            .order_by(ActivitySession.id)
        )
        if core.engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        ids = list(db.scalars(query))
        if ids:
            db.execute(
                update(ActivitySession)
                .where(ActivitySession.id.in_(ids), ActivitySession.claimed_by == worker)
                .values(claim_heartbeat_at=core.now())
                .execution_options(synchronize_session=False)
            )
        return len(ids)


@contextmanager
def heartbeat(core: Pamcore, worker: str) -> Iterator[None]:
    """Keep ``worker``'s claims alive while the block runs (a thread beating every third of
    ``claim_timeout``): actions may wait on the network far longer than the timeout."""
    stop = threading.Event()
    interval = core.config.claim_timeout / 3

    def keep_beating() -> None:
        while not stop.wait(interval):
            try:
                beat(core, worker)
            except Exception:  # the next beat retries; the claim only lapses if all fail
                log.warning("claim heartbeat of %s failed", worker, exc_info=True)

    thread = threading.Thread(target=keep_beating, name=f"heartbeat {worker}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
