"""Signing in to the proxy by password and keyboard-interactive, with a second factor."""

from __future__ import annotations

import asyncio

import asyncssh
import pyotp
from proxy_world import PASSWORD, World
from sqlalchemy import select

from pamcore.model import (
    User,
)
from pamcore.services.twofactor import confirm_enrolment, start_enrolment


class _Answers(asyncssh.SSHClient):
    """Answers keyboard-interactive prompts from a table, keeping prompts and banners."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.prompts: list[str] = []
        self.banners: list[str] = []

    def auth_banner_received(self, msg: str, lang: str) -> None:
        self.banners.append(msg)

    def kbdint_auth_requested(self) -> str:
        return ""  # no submethods: the server chooses (RFC 4256 §3.1)

    def kbdint_challenge_received(
        self, name: str, instructions: str, lang: str, prompts: list[tuple[str, bool]]
    ) -> list[str]:
        self.prompts += [prompt for prompt, _echo in prompts]
        return [self.answers[prompt] for prompt, _echo in prompts]


def _sign_in(world: World, method: str, code: str = "") -> tuple[str | None, _Answers]:
    """``whoami`` through the proxy signing in by ``method`` only; ``None`` when refused."""
    client = _Answers({"Password: ": PASSWORD, "Verification code: ": code})

    async def go() -> str | None:
        try:
            async with asyncssh.connect(
                "127.0.0.1",
                world.port,
                username="alice+web01",
                known_hosts=None,
                client_factory=lambda: client,
                preferred_auth=method,
                password=PASSWORD if method == "password" else None,  # else: the table
                client_keys=None,
                agent_path=None,
            ) as conn:
                return str((await conn.run("whoami", check=False)).stdout)
        except asyncssh.PermissionDenied:
            return None

    return asyncio.run(go()), client


def test_a_totp_user_signs_in_by_keyboard_interactive_with_a_code(world: World) -> None:
    out, client = _sign_in(world, "keyboard-interactive")
    assert (out, client.prompts) == ("root\n", ["Password: "])  # no TOTP: the password only
    with world.core.unit() as db:
        alice = db.scalar(select(User).where(User.username == "alice"))
        enrolment = start_enrolment(world.core, db, alice)
        code = pyotp.TOTP(enrolment.secret).at(world.clock.now)
        confirm_enrolment(world.core, db, alice, enrolment.secret_id, code)
    out, client = _sign_in(world, "password")
    assert out is None
    assert "pamcore: this account also needs a verification code" in "".join(client.banners)
    out, client = _sign_in(
        world, "keyboard-interactive", code="000000" if code != "000000" else "1"
    )
    assert out is None and "pamcore: wrong or expired code" in "".join(client.banners)
    wrong = [e for e in world.audited("auth.failed") if e.details["reason"].startswith("wrong or")]
    assert len(wrong) == 3  # a retrying client is stopped before it locks the account
    # The enrolment's code is spent (RFC 6238 §5.2: no replay); the next step's code works.
    world.clock.advance(seconds=30)
    code = pyotp.TOTP(enrolment.secret).at(world.clock.now)
    out, client = _sign_in(world, "keyboard-interactive", code=code)
    assert (out, client.prompts) == ("root\n", ["Password: ", "Verification code: "])
    assert "auth.second_factor" in world.audit_actions()
