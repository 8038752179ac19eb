"""Connection tokens for different uses: each use has its own lifetime and signing salt,
so a token made for one use is refused by another, and the refusal names the use."""

from __future__ import annotations

import pytest

from pamcore.clock import FrozenClock
from pamcore.core import Pamcore
from pamcore.errors import AuthenticationFailed
from pamcore.services import scheduler
from pamcore.services.sessions import SessionRequest, create_session
from pamcore.services.terminal_tokens import (
    TERMINAL,
    TokenUse,
    issue_terminal_token,
    redeem_terminal_token,
)
from tests.world import World, fresh

SECRET = "instance-secret-for-tests"
FILE = TokenUse("file token", 600, "pamcore.test-file", "download the file again")


@pytest.fixture
def sid(core: Pamcore, world: World) -> int:
    with core.unit() as db:
        req = SessionRequest("Check out root", ("db01",))
        session_id = create_session(core, db, fresh(db, world.alice), req).id
    scheduler.tick(core)
    return session_id


def issue(core: Pamcore, world: World, sid: int, use: TokenUse) -> str:
    with core.reader() as db:
        return issue_terminal_token(
            core, db, fresh(db, world.alice), sid, "db01", "ssh", SECRET, use
        )


def redeem(core: Pamcore, token: str, use: TokenUse) -> int:
    with core.reader() as db:
        return redeem_terminal_token(core, db, token, "ssh", SECRET, use).session_id


def test_a_token_is_only_good_for_its_own_use(core: Pamcore, world: World, sid: int) -> None:
    token = issue(core, world, sid, FILE)
    with pytest.raises(AuthenticationFailed, match="^the terminal token is not valid; open the"):
        redeem(core, token, TERMINAL)
    assert redeem(core, token, FILE) == sid
    with pytest.raises(AuthenticationFailed, match="^the file token was already used; download"):
        redeem(core, token, FILE)


def test_each_use_has_its_own_lifetime(
    core: Pamcore, world: World, sid: int, clock: FrozenClock
) -> None:
    terminal, file, late = (issue(core, world, sid, use) for use in (TERMINAL, FILE, FILE))
    clock.advance(seconds=TERMINAL.seconds + 1)
    with pytest.raises(AuthenticationFailed, match="^the terminal token expired"):
        redeem(core, terminal, TERMINAL)
    assert redeem(core, file, FILE) == sid
    clock.advance(seconds=FILE.seconds - TERMINAL.seconds)
    with pytest.raises(AuthenticationFailed, match="^the file token expired; download the file"):
        redeem(core, late, FILE)


def test_a_token_redeemed_on_one_node_is_refused_on_another(
    core: Pamcore, other_node: Pamcore, world: World, sid: int
) -> None:
    """Two proxy nodes (two cores on one database): the second hears "already used"."""
    token = issue(core, world, sid, TERMINAL)
    assert redeem(other_node, token, TERMINAL) == sid
    with pytest.raises(AuthenticationFailed, match="^the terminal token was already used"):
        redeem(core, token, TERMINAL)
