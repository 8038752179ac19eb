"""Which schema revision this pamcore ships and which one a database is at, read without
Alembic: every command checks them when it opens the core, and importing Alembic's machinery
for that cost more CPU than the rest of a listing. Migrating stays in :mod:`pamcore.schema`.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import OperationalError

from pamcore.errors import ConfigurationError

VERSIONS = Path(__file__).parent / "migrations" / "versions"

#: ``revision: str = "0012"`` and ``down_revision: str | None = "0011"`` in a migration script.
_ASSIGNMENT = re.compile(r"^(revision|down_revision)\b[^=\n]*=\s*(.+?)\s*$", re.MULTILINE)


def head_revision() -> str:
    """The newest migration this pamcore ships: the one that no other migration revises."""
    revisions: set[str] = set()
    revised: set[str | None] = set()
    for path in VERSIONS.glob("*.py"):
        found = dict(_ASSIGNMENT.findall(path.read_text(encoding="utf-8")))
        if "revision" not in found:  # __init__.py
            continue
        revisions.add(ast.literal_eval(found["revision"]))
        down = ast.literal_eval(found.get("down_revision", "None"))
        revised.update(down if isinstance(down, tuple) else (down,))  # a merge revises several
    heads = sorted(revisions - revised)
    if len(heads) != 1:
        raise ConfigurationError(
            f"pamcore/migrations/versions has {len(heads)} newest migrations "
            f"({', '.join(heads) or 'none'}); it needs exactly one"
        )
    return heads[0]


def database_revision(conn: Connection) -> str | None:
    """The revision recorded in Alembic's table; ``None`` for a database never migrated."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    found = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(found) > 1:
        raise ConfigurationError(
            f"the database records {len(found)} schema revisions ({', '.join(sorted(found))}); "
            "pamcore's migrations have one line of history"
        )
    return found[0] if found else None


def require_current(engine: Engine) -> None:
    """Refuse to run on a database that is not at this pamcore's schema, and say what to do
    (an old schema would otherwise fail later with an SQL error in the middle of a request)."""
    try:
        with engine.connect() as conn:
            current = database_revision(conn)
            has_tables = current is None and inspect(conn).has_table("activity_sessions")
    except OperationalError as exc:
        raise ConfigurationError(
            f"cannot open the database ({exc.orig}); check database_url"
        ) from exc
    if current is None:
        raise ConfigurationError(
            "the database has no pamcore schema yet; run 'pamcore init' or 'pamcore db upgrade'"
            if not has_tables
            else "the database was not created by pamcore's migrations; start from an empty one"
        )
    head = head_revision()
    if current != head:
        raise ConfigurationError(
            f"the database schema is at revision {current} but this pamcore needs {head}; "
            f"back it up, then run 'pamcore db upgrade'"
        )
