"""SQLite engines: a connection to a database not yet in WAL mode opens, and switches it to
WAL, even while another connection is writing (the switch needs the file to itself, and
SQLite fails it at once instead of waiting)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from sqlalchemy import text

from pamcore.storage import create_db_engine


def test_a_connection_opening_while_another_writes_waits_and_switches_to_wal(
    tmp_path: Path,
) -> None:
    path = tmp_path / "fresh.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE t (x INTEGER)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t VALUES (1)")
    done = threading.Timer(0.3, writer.execute, ["COMMIT"])
    done.start()
    engine = create_db_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            mode = conn.execute(text("PRAGMA journal_mode")).scalar_one()
            rows = conn.execute(text("SELECT count(*) FROM t")).scalar_one()
    finally:
        done.join()
        writer.close()
        engine.dispose()
    assert (mode, rows) == ("wal", 1)  # the writer's row is there: it committed first
