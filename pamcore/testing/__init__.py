"""Test helpers for pamcore and its plugin authors.

Use from a ``conftest.py``::

    pytest_plugins = ["pamcore.testing"]

which provides the fixtures ``clock`` (a :class:`~pamcore.clock.FrozenClock`), ``db_url``
(SQLite, and PostgreSQL when ``PAMCORE_TEST_PG_URL`` names a server), ``empty_db_url`` (the
same without a schema), ``core`` (a fresh instance with schema, master key and the
installed plugins, in strict mode) and ``other_node`` (a second core on ``core``'s
database). A project that registers the markers ``e2e``, ``browser`` and ``slow`` gets its
tests sorted into those tiers (:mod:`pamcore.testing.tiers`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import io
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from pamcore.audit import AuditKeyring
from pamcore.clock import FrozenClock
from pamcore.config import load_config
from pamcore.core import Pamcore
from pamcore.model import AuditEvent, Base
from pamcore.plugins import PluginHost, build_plugin_host
from pamcore.testing.tiers import install_guard, mark_tiers, tiers_enabled
from pamcore.vault import MasterKey, write_key_file, write_keyring

PG_ENV = "PAMCORE_TEST_PG_URL"
REQUIRE_PG_ENV = "PAMCORE_REQUIRE_PG"
#: A fixed instant, so tests read like the story they tell ("10:00 UTC").
T0 = dt.datetime(2026, 11, 28, 10, 0, tzinfo=dt.UTC)

T = TypeVar("T")

#: Per test process, so parallel runs on one server never drop each other's template.
_TEMPLATE = f"pamcore_test_template_{os.getpid()}"


def pytest_configure(config: pytest.Config) -> None:
    if tiers_enabled(config):
        install_guard(config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if tiers_enabled(config):
        mark_tiers(items)


def pg_admin_url() -> str | None:
    return os.environ.get(PG_ENV) or None


def require_pg_admin_url() -> str:
    """The PostgreSQL admin URL; skips the test without one, or fails it when CI demands
    PostgreSQL (``PAMCORE_REQUIRE_PG``), so a missing server never passes silently."""
    admin = pg_admin_url()
    if admin is None:
        if os.environ.get(REQUIRE_PG_ENV):
            pytest.fail(f"{REQUIRE_PG_ENV} is set but {PG_ENV} is not")
        pytest.skip(f"PostgreSQL tests need {PG_ENV}")
    return admin


def _pg_template_ready(admin_url: str) -> None:
    """Build a template database with the schema once; each test clones it (fast)."""
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {_TEMPLATE} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {_TEMPLATE}"))
    engine.dispose()
    tpl = create_engine(make_url(admin_url).set(database=_TEMPLATE))
    Base.metadata.create_all(tpl)
    tpl.dispose()


def create_pg_database(admin_url: str, template: str | None = _TEMPLATE) -> str:
    """A new database cloned from the schema template, or empty when ``template`` is None."""
    name = f"pamcore_t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        clone = f" TEMPLATE {template}" if template else ""
        conn.execute(text(f"CREATE DATABASE {name}{clone}"))
    engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(admin_url: str, url: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {make_url(url).database} WITH (FORCE)"))
    engine.dispose()


@pytest.fixture(scope="session")
def _pg_template() -> Iterator[str | None]:
    admin = pg_admin_url()
    if admin is None:
        yield None
        return
    _pg_template_ready(admin)
    yield admin
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {_TEMPLATE} WITH (FORCE)"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty-schema database per test, on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'pamcore.db'}"
        engine = create_engine(url)
        Base.metadata.create_all(engine)
        engine.dispose()
        yield url
        return
    require_pg_admin_url()
    admin = request.getfixturevalue("_pg_template")
    url = create_pg_database(admin)
    yield url
    drop_pg_database(admin, url)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database without any schema, on each backend: for migrations and ``pamcore init``."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    admin = require_pg_admin_url()
    url = create_pg_database(admin, template=None)
    yield url
    drop_pg_database(admin, url)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
def plugin_host() -> PluginHost:
    """The built-in plugins only, strict: unit tests see no installed plugin. A plugin's own
    tests override this fixture, or use ``installed_plugin_host``."""
    return build_plugin_host(strict=True, entry_points=False)


@pytest.fixture
def installed_plugin_host() -> PluginHost:
    """Built-ins plus every installed plugin (entry points), strict: a broken one fails."""
    return build_plugin_host(strict=True)


def make_core(instance: Path, url: str, clock: FrozenClock, plugins: PluginHost) -> Pamcore:
    """A core on ``url`` with a fresh master keyring and audit keyring in ``instance``."""
    key_path = instance / "master.key"
    write_key_file(key_path, MasterKey.generate())
    config = load_config(instance, database_url=url, master_key_path=key_path)
    write_keyring(config.audit_key_path, AuditKeyring.of(MasterKey.generate()))
    return Pamcore(config, plugins=plugins, clock=clock)


@pytest.fixture
def core(
    tmp_path: Path, db_url: str, clock: FrozenClock, plugin_host: PluginHost
) -> Iterator[Pamcore]:
    instance = tmp_path / "instance"
    instance.mkdir()
    core = make_core(instance, db_url, clock, plugin_host)
    yield core
    core.dispose()


@pytest.fixture
def other_node(
    core: Pamcore, tmp_path: Path, clock: FrozenClock, plugin_host: PluginHost
) -> Iterator[Pamcore]:
    """Another process of ``core``'s instance: its own core (engine, pool, memory) on the
    same database, as a second proxy node would be, or the first one after a restart."""
    instance = tmp_path / "other-node"
    instance.mkdir()
    node = make_core(instance, core.config.database_url, clock, plugin_host)
    yield node
    node.dispose()


class FullDisk(io.RawIOBase):
    """A *simulated* full disk (a mock: a real one cannot be filled here): keeps ``room``
    bytes in :attr:`kept`, at most ``chunk`` per write (short writes), then raises ENOSPC
    like write(2)."""

    def __init__(self, room: int, chunk: int | None = None) -> None:
        self.room = room
        self.chunk = chunk
        self.kept = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if not self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        taken = bytes(data[: min(self.room, self.chunk or self.room)])
        self.kept += taken
        self.room -= len(taken)
        return len(taken)


class LoopThread:
    """An asyncio loop in a daemon thread, so blocking clients (ssh, pexpect) can run."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Awaitable[T], timeout: float = 30) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        return future.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


def audited(core: Pamcore, action: str, timeout: float = 5, count: int = 1) -> list[AuditEvent]:
    """The audit events of one kind, waiting up to ``timeout`` seconds for ``count`` of
    them: proxies audit from their own threads, after the client saw the result."""
    deadline = time.monotonic() + timeout
    while True:
        with core.reader() as db:
            events = list(
                db.scalars(
                    select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
                )
            )
            db.expunge_all()
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.1)
