"""Engines and units of work: SQLite (WAL, foreign keys on) by default, PostgreSQL by URL."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from pamcore.clock import Clock

log = logging.getLogger(__name__)

WAL_SWITCH_SECONDS = 30.0


def create_db_engine(url: str) -> Engine:
    """An engine tuned per backend; SQLite writers take the lock up front (BEGIN IMMEDIATE),
    so a read-then-write unit never fails half-way on a snapshot conflict."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        _tune_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" event emit BEGIN itself
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=30000")
        _switch_to_wal(cur)
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _switch_to_wal(cur: sqlite3.Cursor) -> None:
    """Put the database in WAL mode, which persists in the file.

    The switch needs the database to itself and fails at once with "database is locked"
    (SQLite's busy handler does not wait for it) while other connections of a fresh database
    open, so it is retried until this or another connection has made it."""
    deadline = time.monotonic() + WAL_SWITCH_SECONDS
    while cur.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        try:
            cur.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_session_factory(engine: Engine, clock: Clock) -> sessionmaker[Session]:
    """Sessions that stamp new rows' creation times from ``clock`` (the core's)."""
    return sessionmaker(engine, expire_on_commit=False, info={"clock": clock})


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Commit on success, roll back on any error: never a half-written record."""
    with factory() as db:
        try:
            yield db
            db.commit()
        except BaseException:
            db.rollback()
            raise
