"""One recording cap per session across nodes: two cores on one database stand for two
proxies recording the same session; threads race as concurrent relays do."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pamcore.core import Pamcore
from pamcore.model import RecordingBudget
from pamcore.services import recording_budgets
from pamcore.services.recording_budgets import CHUNK_BYTES, SessionBudget, release, reserve
from tests.world import World, requested_session, saved_recording

MIB = 1024 * 1024
RACERS = 16


def test_two_nodes_share_one_cap(core: Pamcore, other_node: Pamcore, world: World) -> None:
    sid = requested_session(core, world.alice)
    assert reserve(core, sid, 600, 1000) == 600
    assert reserve(other_node, sid, 600, 1000) == 400  # what is left, no more
    assert reserve(core, sid, 1, 1000) == 0
    release(other_node, sid, 150)  # a connection that ended with allowance to spare
    assert reserve(core, sid, 600, 1000) == 150


def test_the_first_reservation_counts_what_the_session_registered(
    core: Pamcore, world: World, tmp_path: Path
) -> None:
    sid = requested_session(core, world.alice)
    saved_recording(core, world, sid, tmp_path)  # an earlier connection's recording
    size = (tmp_path / f"{sid}.cast").stat().st_size
    assert reserve(core, sid, 10_000, 1000) == 1000 - size


def test_racing_reservations_add_up_to_the_cap(
    core: Pamcore, other_node: Pamcore, world: World
) -> None:
    sid = requested_session(core, world.alice)
    start = threading.Barrier(RACERS)

    def take(n: int) -> int:
        start.wait()
        return reserve((core, other_node)[n % 2], sid, 100, 1000)

    with ThreadPoolExecutor(RACERS) as pool:
        grants = list(pool.map(take, range(RACERS)))
    assert sum(grants) == 1000 and grants.count(100) == 10


def test_budgets_on_two_nodes_stop_at_the_cap_and_reserve_in_chunks(
    core: Pamcore, other_node: Pamcore, world: World
) -> None:
    sid = requested_session(core, world.alice)
    cap = 8 * MIB
    here, there = SessionBudget(core, sid, cap), SessionBudget(other_node, sid, cap)
    assert here.chunk == CHUNK_BYTES
    assert here.allows(100) and here.left == CHUNK_BYTES  # one chunk, not 100 bytes
    written = 0
    while here.allows(4096) and there.allows(4096):
        here.spend(4096)
        there.spend(4096)
        written += 2 * 4096
    assert cap - 2 * 4096 < written <= cap
    assert reserve(core, sid, 1, cap) == 0
    here.release()
    there.release()
    assert reserve(core, sid, cap, cap) == cap - written  # unwritten allowance came back


def test_a_small_cap_is_reserved_in_small_chunks(core: Pamcore, world: World) -> None:
    sid = requested_session(core, world.alice)
    budget = SessionBudget(core, sid, 16 * 1024)
    assert budget.allows(1) and budget.left == 1024


def test_a_database_failure_stops_the_recording_not_the_caller(core: Pamcore, world: World) -> None:
    budget = SessionBudget(core, 999_999, MIB)  # no such session: the insert fails
    assert not budget.allows(1)
    budget.release()  # nothing reserved, nothing to give back


def reserved(core: Pamcore, sid: int) -> int:
    with core.reader() as db:
        budget = db.get(RecordingBudget, sid)
        return budget.reserved_bytes if budget else 0


async def until(condition, seconds: float = 10) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


def test_in_a_relay_the_next_chunk_is_reserved_off_the_loop(
    core: Pamcore, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once less than a chunk is left, a worker thread reserves the next one: the relay's
    loop waits on the database only for the first chunk."""
    sid = requested_session(core, world.alice)
    threads: list[str] = []
    real_reserve = recording_budgets.reserve

    def noting_the_thread(node: Pamcore, session_id: int, wanted: int, cap: int) -> int:
        threads.append(threading.current_thread().name)
        return real_reserve(node, session_id, wanted, cap)

    monkeypatch.setattr(recording_budgets, "reserve", noting_the_thread)

    async def relay() -> None:
        budget = SessionBudget(core, sid, 8 * MIB)
        assert budget.allows(100) and budget.left == CHUNK_BYTES  # the first, in the loop
        budget.spend(100)
        await until(lambda: budget.left == 2 * CHUNK_BYTES - 100)  # the next, asked at once
        assert budget.allows(CHUNK_BYTES)  # no wait: enough is here; a third is asked for
        budget.spend(CHUNK_BYTES)
        budget.release()  # the chunk on its way is given back when it lands
        await until(lambda: len(threads) == 3 and reserved(core, sid) == 100 + CHUNK_BYTES)

    asyncio.run(relay())
    assert threads[0] == "MainThread" and "MainThread" not in threads[1:]
