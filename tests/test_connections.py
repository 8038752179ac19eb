"""Connections move a session between available and active, each with its own id and one
opened/closed pair in the audit log; admins can list the open ones and ask for one to be
terminated."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from pamcore.clock import FrozenClock
from pamcore.core import Pamcore
from pamcore.errors import NotFound, PolicyDenied
from pamcore.lifecycle import Status
from pamcore.model import ActivitySession, AuditEvent, LiveConnection
from pamcore.proxywatch import watch_connections
from pamcore.runtime import SchedulerService
from pamcore.services.access import authorize_connection
from pamcore.services.common import worker_name
from pamcore.services.connections import (
    LEGACY_ALGORITHMS,
    close_silent_nodes,
    connection_closed,
    connection_opened,
    heartbeat,
    legacy_algorithms,
    list_connections,
    open_count,
    request_termination,
    to_close,
)
from pamcore.services.ending import complete_ending
from pamcore.services.sessions import end_session
from tests.world import World, available_session, fresh, opened_connection


def status(core: Pamcore, sid: int) -> tuple[Status, int]:
    with core.reader() as db:
        s = db.get(ActivitySession, sid)
        return Status(s.status), open_count(db, sid)


@pytest.fixture
def sid(core: Pamcore, world: World) -> int:
    return available_session(core, world)


def closed(core: Pamcore, connection_id: int, reason: str = "closed") -> None:
    with core.unit() as db:
        connection_closed(core, db, connection_id, reason)


def lifecycle_events(core: Pamcore, sid: int) -> list[tuple[str, int, str | None]]:
    """(action, connection, reason) of the session's connection.opened/closed events."""
    with core.reader() as db:
        events = db.scalars(
            select(AuditEvent)
            .where(AuditEvent.session_id == sid)
            .where(AuditEvent.action.in_(["connection.opened", "connection.closed"]))
            .order_by(AuditEvent.id)
        )
        return [(e.action, e.details["connection"], e.details.get("reason")) for e in events]


def test_first_opens_active_last_closes_available(core: Pamcore, world: World, sid: int) -> None:
    first = opened_connection(core, world, sid)
    assert status(core, sid) == (Status.ACTIVE, 1)
    second = opened_connection(core, world, sid)
    closed(core, first)
    assert status(core, sid) == (Status.ACTIVE, 1)
    closed(core, second)
    assert status(core, sid) == (Status.AVAILABLE, 0)
    closed(core, second)  # a late duplicate close is harmless
    assert status(core, sid) == (Status.AVAILABLE, 0)


def test_ids_are_never_reused_and_each_has_one_opened_closed_pair(
    core: Pamcore, world: World, sid: int
) -> None:
    """Closing the newest connection no longer frees its id for the next one (SQLite
    reused a deleted row's id), and a late duplicate close is not audited again."""
    first = opened_connection(core, world, sid)
    closed(core, first, "closed by the client")
    closed(core, first, "a late duplicate")
    second = opened_connection(core, world, sid)
    closed(core, second, "terminated by an administrator")
    assert second != first
    assert lifecycle_events(core, sid) == [
        ("connection.opened", first, None),
        ("connection.closed", first, "closed by the client"),
        ("connection.opened", second, None),
        ("connection.closed", second, "terminated by an administrator"),
    ]
    with core.reader() as db:
        row = db.get(LiveConnection, first)
        assert (row.closed_at, row.close_reason) == (core.now(), "closed by the client")


def test_ending_closes_what_the_proxy_has_not_and_refuses_new_ones(
    core: Pamcore, world: World, sid: int
) -> None:
    """Whoever closes first writes the one connection.closed: the proxy before the ending
    completes, or the ending before the proxy noticed (then the proxy's close adds none)."""
    by_proxy, by_ending = opened_connection(core, world, sid), opened_connection(core, world, sid)
    with core.unit() as db:
        end_session(core, db, fresh(db, world.alice), sid)
    closed(core, by_proxy, "the session was ended")
    complete_ending(core, sid, worker_name(), "alice")
    assert status(core, sid) == (Status.ENDED, 0)
    closed(core, by_ending, "the session was ended")  # the proxy, late
    assert lifecycle_events(core, sid)[2:] == [
        ("connection.closed", by_proxy, "the session was ended"),
        ("connection.closed", by_ending, "session ended"),
    ]
    with pytest.raises(PolicyDenied, match="is Ended"):
        opened_connection(core, world, sid)


def test_admin_lists_and_terminates(core: Pamcore, world: World, sid: int) -> None:
    live = opened_connection(core, world, sid)
    with core.reader() as db:
        with pytest.raises(PolicyDenied, match="only an administrator"):
            list_connections(db, fresh(db, world.alice))
        rows = list_connections(db, fresh(db, world.erin))
        assert [(c.id, c.protocol, c.peer) for c in rows] == [(live, "ssh", "127.0.0.1:50000")]
    with core.unit() as db:
        request_termination(core, db, fresh(db, world.erin), live, "suspicious commands")
    with core.reader() as db:
        assert to_close(db, [live, live + 1]) == {live: "suspicious commands"}
    closed(core, live, "terminated by an administrator")
    with core.reader() as db:
        assert list_connections(db, fresh(db, world.erin)) == []
        assert to_close(db, [live]) == {live: "terminated by an administrator"}
    with core.unit() as db, pytest.raises(NotFound, match=f"no live connection #{live}"):
        request_termination(core, db, fresh(db, world.erin), live)


@dataclass(frozen=True)
class Held:
    connection_id: int
    session_id: int


def test_proxy_watch_terminates_updates_and_waits_for_newcomers(
    core: Pamcore, world: World, sid: int
) -> None:
    """One round of the proxies' watch: the terminated connection gets the admin's reason,
    the other its session's end time; one that arrived during the query (its session not
    asked about) is left for the next round rather than taken for an ended session."""
    doomed, kept = opened_connection(core, world, sid), opened_connection(core, world, sid)
    with core.unit() as db:
        request_termination(core, db, fresh(db, world.erin), doomed, "suspicious commands")
    with core.reader() as db:
        ends_at = db.get(ActivitySession, sid).ends_at
    newcomer = Held(kept + 1, sid + 1)
    held = [Held(doomed, sid), Held(kept, sid)]
    # Before the query, after it (the newcomer has arrived), then nothing: one round.
    rounds = [held, [*held, newcomer]]
    seen: list[tuple[str, int, object]] = []

    def live() -> list[tuple[Held, Held]]:
        return [(h, h) for h in (rounds.pop(0) if rounds else [])]

    async def one_round() -> None:
        task = asyncio.create_task(
            watch_connections(
                core,
                "test",
                live,
                lambda h, reason: seen.append(("terminate", h.connection_id, reason)),
                lambda h, end, now: seen.append(("update", h.connection_id, end)),
                seconds=0.01,
            )
        )
        while rounds or len(seen) < 2:
            await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(one_round())
    assert seen == [("terminate", doomed, "suspicious commands"), ("update", kept, ends_at)]


def test_a_silent_nodes_connections_are_closed_once_after_the_timeout(
    core: Pamcore, world: World, sid: int, clock: FrozenClock
) -> None:
    """This node keeps beating, another stopped: once ``heartbeat_timeout`` passed, a third
    node's sweep closes the silent node's connection, audited once with the reason; a
    second sweep (any node) finds nothing, and the dead node, should it wake, is told."""
    dead = Pamcore(core.config, plugins=core.plugins, clock=clock, node=f"{core.node}-dead")
    sweeper = Pamcore(core.config, plugins=core.plugins, clock=clock, node=f"{core.node}-c")
    try:
        mine, theirs = opened_connection(core, world, sid), opened_connection(dead, world, sid)
        clock.advance(seconds=core.config.heartbeat_timeout - 1)
        assert close_silent_nodes(sweeper) == 0
        with core.unit() as db:
            heartbeat(core, db)
        clock.advance(seconds=2)
        assert close_silent_nodes(sweeper) == 1
        assert close_silent_nodes(core) == 0
        reason = f"node {dead.node} stopped answering"
        assert lifecycle_events(core, sid)[2:] == [("connection.closed", theirs, reason)]
        assert status(core, sid) == (Status.ACTIVE, 1)
        with core.reader() as db:
            assert db.get(LiveConnection, theirs).closed_at == clock.now
            assert db.get(LiveConnection, mine).closed_at is None
            assert to_close(db, [mine, theirs]) == {theirs: reason}
    finally:
        dead.dispose()
        sweeper.dispose()


def test_the_watch_beats_for_its_node_and_sweeps_silent_ones(
    core: Pamcore, world: World, sid: int, clock: FrozenClock
) -> None:
    """A watch's round refreshes the heartbeat of its node's connections and closes those
    of a node silent past the timeout, even while it holds nothing of that session."""
    dead = Pamcore(core.config, plugins=core.plugins, clock=clock, node=f"{core.node}-dead")
    try:
        mine, theirs = opened_connection(core, world, sid), opened_connection(dead, world, sid)
        clock.advance(seconds=core.config.heartbeat_timeout + 1)
        held = [Held(mine, sid)]
        updated: list[int] = []

        async def one_round() -> None:
            task = asyncio.create_task(
                watch_connections(
                    core,
                    "test",
                    lambda: [(h, h) for h in held],
                    lambda h, reason: None,
                    lambda h, end, now: updated.append(h.connection_id),
                    seconds=0.01,
                )
            )
            while not updated:
                await asyncio.sleep(0.01)
            task.cancel()

        asyncio.run(asyncio.wait_for(one_round(), 10))
        with core.reader() as db:
            assert db.get(LiveConnection, mine).heartbeat_at == clock.now
            assert db.get(LiveConnection, mine).closed_at is None
            assert db.get(LiveConnection, theirs).closed_at == clock.now
    finally:
        dead.dispose()


def test_the_worker_sweeps_silent_nodes_too(
    core: Pamcore, world: World, sid: int, clock: FrozenClock
) -> None:
    """With no proxy node left to watch, the worker's loop closes a dead node's
    connection after the timeout, and the session is available again."""
    dead = Pamcore(core.config, plugins=core.plugins, clock=clock, node=f"{core.node}-dead")
    try:
        theirs = opened_connection(dead, world, sid)
    finally:
        dead.dispose()
    clock.advance(seconds=core.config.heartbeat_timeout + 1)

    async def run_worker() -> None:
        worker = SchedulerService(core, 0.05)
        await worker.start()
        while status(core, sid)[1]:
            await asyncio.sleep(0.05)
        await worker.stop()

    asyncio.run(asyncio.wait_for(run_worker(), 10))
    assert status(core, sid) == (Status.AVAILABLE, 0)
    reason = f"node {core.node}-dead stopped answering"
    assert lifecycle_events(core, sid)[1:] == [("connection.closed", theirs, reason)]


def test_legacy_algorithm_marks_come_from_the_audit_log(core: Pamcore) -> None:
    """The dashboard's Legacy SSH badge: the latest connection.legacy_algorithms event of each
    session asked about, with the resource it was on."""
    used = {"kex": "diffie-hellman-group1-sha1", "cipher": "aes128-cbc", "mac": "hmac-sha1"}
    with core.unit() as db:
        core.audit(db, "alice", LEGACY_ALGORITHMS, target="sw01", session_id=7, host_key="ssh-dss")
        core.audit(
            db, "alice", LEGACY_ALGORITHMS, target="sw01", session_id=7, host_key="ssh-rsa", **used
        )
        core.audit(db, "alice", "connection.opened", target="sw02", session_id=8)
        core.audit(db, "alice", LEGACY_ALGORITHMS, target="sw03", session_id=9, **used)
    with core.reader() as db:
        assert legacy_algorithms(db, [7, 8]) == {
            7: {**used, "host_key": "ssh-rsa", "resource": "sw01"}
        }
        assert legacy_algorithms(db, []) == {}


def test_a_connection_opens_after_another_changed_the_session_it_had_read(
    core: Pamcore, world: World, sid: int
) -> None:
    """Two connections to one session at once (as a bench of concurrent ``ssh`` found): the
    second unit read the session to authorize, the first then opened and moved it to
    Active; the second still opens, on the session as it is now, instead of failing with
    SQLAlchemy's stale-data error."""
    if core.engine.dialect.name == "sqlite":
        pytest.skip("a SQLite unit holds the write lock from its start: no unit interleaves")
    with core.unit() as db:
        alice, db01 = fresh(db, world.alice), fresh(db, world.db01)
        grant = authorize_connection(core, db, alice, db01, "ssh")
        assert Status(grant.session.status) == Status.AVAILABLE
        with ThreadPoolExecutor(1) as other:  # another unit (its own thread), committed
            first = other.submit(opened_connection, core, world, sid).result(timeout=30)
        second = connection_opened(core, db, alice, sid, db01, "ssh", "127.0.0.1:50001")
        assert Status(grant.session.status) == Status.ACTIVE
    assert status(core, sid) == (Status.ACTIVE, 2)
    assert second.id != first
