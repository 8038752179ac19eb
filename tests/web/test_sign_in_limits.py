"""The per-address sign-in limiter: failures count, successes do not, idle addresses are
forgotten, and behind a configured reverse proxy each client is counted on its own."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from pamcore.core import Pamcore
from pamcore.model import User
from pamcore.passwords import hash_password
from pamcore.web.app import create_app
from pamcore.web.ratelimit import AttemptLimiter

PASSWORD = "limits-test-password-7"
LIMIT = 3


@pytest.fixture
def alice(core: Pamcore, world) -> str:  # type: ignore[no-untyped-def]
    with core.unit() as db:
        db.query(User).filter_by(username="alice").one().password_hash = hash_password(PASSWORD)
    return "alice"


def client(core: Pamcore, proxies: int = 0) -> FlaskClient:
    if proxies:
        core.config = core.config.with_overrides(web_trusted_proxies=proxies)
    config = {"TESTING": True, "WTF_CSRF_ENABLED": False, "PAMCORE_SIGN_IN_ATTEMPTS": LIMIT}
    return create_app(core, config).test_client()


def sign_in(web: FlaskClient, username: str, password: str, via: str | None = None) -> int:
    headers = {"X-Forwarded-For": via} if via else {}
    data = {"username": username, "password": password}
    status = web.post("/login", data=data, headers=headers).status_code
    web.post("/logout", headers=headers)
    return status


def test_successful_sign_ins_do_not_count(core: Pamcore, alice: str) -> None:
    web = client(core)
    assert [sign_in(web, alice, PASSWORD) for _ in range(LIMIT * 3)] == [303] * (LIMIT * 3)
    assert [sign_in(web, "nobody", "wrong") for _ in range(LIMIT)] == [401] * LIMIT
    assert sign_in(web, alice, PASSWORD) == 429


def test_forwarded_for_is_ignored_unless_a_proxy_is_trusted(core: Pamcore, alice: str) -> None:
    web = client(core)
    for n in range(LIMIT):  # a client naming a new address each time is still one address
        assert sign_in(web, "nobody", "wrong", via=f"198.51.100.{n}") == 401
    assert sign_in(web, alice, PASSWORD, via="198.51.100.99") == 429


def test_behind_a_trusted_proxy_each_client_counts_alone(core: Pamcore, alice: str) -> None:
    web = client(core, proxies=1)
    for _ in range(LIMIT):
        assert sign_in(web, "nobody", "wrong", via="198.51.100.7") == 401
    assert sign_in(web, alice, PASSWORD, via="198.51.100.7") == 429
    assert sign_in(web, alice, PASSWORD, via="203.0.113.8") == 303


def test_idle_addresses_are_forgotten() -> None:
    now = [1000.0]
    limiter = AttemptLimiter(limit=2, window=60, clock=lambda: now[0])
    for n in range(500):
        limiter.failed(f"10.0.{n // 250}.{n % 250}")
    limiter.failed("192.0.2.1")
    limiter.failed("192.0.2.1")
    assert limiter.retry_after("192.0.2.1") == 61 and len(limiter) == 501
    now[0] += 61
    assert limiter.retry_after("192.0.2.1") == 0
    assert len(limiter) == 0
