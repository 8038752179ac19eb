"""Single use across nodes: two cores on one database stand for two proxy nodes (or one
node before and after a restart); threads race the way concurrent redemptions do."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from pamcore.clock import FrozenClock
from pamcore.core import Pamcore
from pamcore.model import SingleUse
from pamcore.services import single_use
from pamcore.services.single_use import KEEP_AFTER_EXPIRY, PURGE_BATCH, Outcome

RACERS = 16


def soon(core: Pamcore) -> dt.datetime:
    return core.now() + dt.timedelta(seconds=60)


def test_a_token_spent_on_one_node_is_refused_on_another_and_after_a_restart(
    core: Pamcore, other_node: Pamcore
) -> None:
    """``other_node`` is a fresh core: another proxy, or this one restarted."""
    assert single_use.spend(core, "t", "nonce-1", soon(core))
    assert not single_use.spend(other_node, "t", "nonce-1", soon(core))
    assert single_use.spend(other_node, "other kind", "nonce-1", soon(core))  # kinds never meet


def test_only_a_digest_is_stored(core: Pamcore) -> None:
    single_use.spend(core, "t", "the-secret-nonce", soon(core))
    single_use.hold(core, "ticket", "the-secret-ticket", soon(core), {"user_id": 7})
    with core.reader() as db:
        rows = db.scalars(select(SingleUse)).all()
        stored = " ".join(f"{r.kind} {r.digest} {r.payload}" for r in rows)
    assert len(rows) == 2 and "secret" not in stored
    assert single_use.digest("the-secret-nonce") in stored


def test_a_held_ticket_is_redeemed_once_on_any_node(core: Pamcore, other_node: Pamcore) -> None:
    single_use.hold(core, "ticket", "abc", soon(core), {"user_id": 7})
    won = single_use.redeem(other_node, "ticket", "abc")
    assert won.outcome is Outcome.WON and won.payload == {"user_id": 7}
    assert won.expires_at == soon(core)
    assert single_use.redeem(core, "ticket", "abc").outcome is Outcome.SPENT_BEFORE
    assert single_use.redeem(core, "ticket", "never issued").outcome is Outcome.UNKNOWN
    assert single_use.redeem(core, "other kind", "abc").outcome is Outcome.UNKNOWN


def race(attempt: Callable[[], bool]) -> list[bool]:
    """``attempt`` from :data:`RACERS` threads released together."""
    start = threading.Barrier(RACERS)

    def run() -> bool:
        start.wait()
        return attempt()

    with ThreadPoolExecutor(RACERS) as pool:
        return list(pool.map(lambda _: run(), range(RACERS)))


def test_of_many_racing_spenders_exactly_one_wins(core: Pamcore, other_node: Pamcore) -> None:
    nodes = [core, other_node]
    turn = iter(range(RACERS))
    lock = threading.Lock()

    def spend() -> bool:
        with lock:
            node = nodes[next(turn) % 2]
        return single_use.spend(node, "t", "raced", soon(core))

    assert sorted(race(spend)) == [False] * (RACERS - 1) + [True]


def test_of_many_racing_redeemers_exactly_one_wins(core: Pamcore, other_node: Pamcore) -> None:
    single_use.hold(core, "ticket", "raced", soon(core), {"n": 1})
    outcomes = race(lambda: single_use.redeem(other_node, "ticket", "raced").outcome is Outcome.WON)
    assert outcomes.count(True) == 1


def count(core: Pamcore) -> int:
    with core.reader() as db:
        return len(db.scalars(select(SingleUse.digest)).all())


def test_spending_and_holding_purge_rows_long_expired_in_bounded_batches(
    core: Pamcore, clock: FrozenClock
) -> None:
    for n in range(PURGE_BATCH + 5):
        single_use.spend(core, "t", f"old-{n}", core.now())
    clock.advance(seconds=KEEP_AFTER_EXPIRY.total_seconds())
    single_use.spend(core, "t", "a", soon(core))
    assert count(core) == PURGE_BATCH + 6  # expired, kept a while for "already used"
    clock.advance(seconds=1)
    single_use.hold(core, "ticket", "fresh", soon(core), {})
    assert count(core) == 5 + 2  # one batch went
    single_use.spend(core, "t", "b", soon(core))
    assert count(core) == 3
    assert single_use.redeem(core, "ticket", "fresh").outcome is Outcome.WON
