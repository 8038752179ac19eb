"""Whether a pamcore process can do its work (``/readyz``): its database answers, the
schema is the one this pamcore needs, and every service the process was asked to run (the
scheduler, the dashboard, each proxy listener) is running. Each check returns the reason
it fails in one line, for an operator and a load balancer; never a secret or a user name
(docs/design/monitoring.md).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from pamcore.core import Pamcore
from pamcore.revisions import database_revision, head_revision

log = logging.getLogger(__name__)

#: A database slower than this fails a check or a scrape instead of holding it.
QUERY_TIMEOUT_MS = 2000


class ServiceStates:
    """The runtime's services as readiness sees them: each is starting, running, failed
    (with why) or stopping. Written by the runtime's loop, read by the web threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, str | None] = {}

    def _set(self, name: str, problem: str | None) -> None:
        with self._lock:
            self._states[name] = problem

    def expect(self, name: str) -> None:
        self._set(name, "is starting")

    def started(self, name: str) -> None:
        self._set(name, None)

    def failed(self, name: str, reason: str) -> None:
        self._set(name, f"did not start: {reason}")

    def stopping(self, name: str) -> None:
        self._set(name, "is stopping")

    def problem(self) -> str | None:
        """The first service that is not running, and why; ``None`` when all are."""
        with self._lock:
            for name, problem in self._states.items():
                if problem is not None:
                    return f"{name} {problem}"
        return None


@functools.cache
def _head() -> str:
    """The schema this pamcore needs (the migration scripts do not change while it runs)."""
    return head_revision()


def missing_database_file(core: Pamcore) -> str | None:
    """A SQLite database whose file is gone: connections opened before still read the
    deleted file, and a new one would create an empty file, so ask the file system."""
    url = make_url(core.config.database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    if Path(url.database).exists():
        return None
    return "the SQLite database file is missing"


@contextmanager
def quick_read(core: Pamcore) -> Iterator[Connection]:
    """A read-only transaction for checks and scrapes: no write lock on SQLite, and a
    statement timeout on PostgreSQL."""
    engine = core.engine.execution_options(sqlite_begin="DEFERRED")
    with engine.connect() as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {QUERY_TIMEOUT_MS}")
        yield conn


def database_problem(core: Pamcore) -> str | None:
    """Why the database cannot serve this pamcore (unreachable, file gone, schema not at
    head), or ``None``. The driver's detail goes to the log, not into the answer."""
    if missing := missing_database_file(core):
        return missing
    try:
        with quick_read(core) as conn:
            current = database_revision(conn)
    except SQLAlchemyError as exc:
        log.warning(
            "readiness: database error %s: %s",
            type(exc).__name__,
            getattr(exc, "orig", None) or "see the database log",
        )
        return f"the database is unreachable ({type(exc).__name__})"
    head = _head()
    if current != head:
        return f"the database schema is at {current or 'no revision'}; this pamcore needs {head}"
    return None


def readiness(core: Pamcore, states: ServiceStates | None) -> str | None:
    """Why this process is not ready, or ``None`` when it is."""
    return database_problem(core) or (states.problem() if states is not None else None)
