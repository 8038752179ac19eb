"""Schema migrations (Alembic) driven from code: upgrade, current and head revisions, and
the difference between a database and the models.

No ``alembic.ini`` is needed: the configuration is built here and the migration scripts ship
inside the package (``pamcore/migrations``), so an installed pamcore can migrate itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.exc import OperationalError

from pamcore.errors import ConfigurationError
from pamcore.model import Base
from pamcore.model.base import UTCDateTime
from pamcore.revisions import database_revision, head_revision
from pamcore.storage import create_db_engine

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str | None = None) -> AlembicConfig:
    """An Alembic configuration without an ini file. The URL travels in ``attributes``
    (not the ini options, whose ``%`` interpolation would mangle encoded passwords)."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["url"] = url
    return cfg


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Render our column types as plain SQLAlchemy ones, so a migration never imports model
    code that may change after it was written (a UTCDateTime is a DATETIME in the database)."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime()"
    return False


def migration_options(connection: Connection) -> dict[str, Any]:
    """``context.configure`` options shared by the migrations (env.py) and the comparison."""
    return {
        "target_metadata": Base.metadata,
        # SQLite cannot ALTER most things: batch mode recreates the table instead.
        "render_as_batch": connection.dialect.name == "sqlite",
        "compare_type": True,
        "render_item": _render_item,
    }


@contextmanager
def _connection(url: str, *, begin: bool = False) -> Iterator[Connection]:
    """A connection (in one transaction if ``begin``); an unreachable database becomes a
    clear :class:`ConfigurationError` instead of a driver traceback."""
    engine = create_db_engine(url)
    try:
        try:
            conn = engine.connect()
        except OperationalError as exc:
            raise ConfigurationError(
                f"cannot open the database ({exc.orig}); check database_url"
            ) from exc
        with conn:
            if begin:
                with conn.begin():
                    yield conn
            else:
                yield conn
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    """The revision the database is at; ``None`` for a database never migrated."""
    with _connection(url) as conn:
        return database_revision(conn)


def upgrade_database(url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate the database to ``revision``; returns (revision before, revision after)."""
    # One transaction for the whole upgrade (the SQLite engine opens it with BEGIN
    # IMMEDIATE): a failed migration leaves the previous schema, not half of the new one.
    with _connection(url, begin=True) as conn:
        before = MigrationContext.configure(conn).get_current_revision()
        if before is None and "activity_sessions" in inspect(conn).get_table_names():
            raise ConfigurationError(
                "the database has pamcore tables but no migration revision (made without "
                "'pamcore init'?); start from an empty database"
            )
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        after = MigrationContext.configure(conn).get_current_revision()
    if before != after:
        log.info("database migrated from %s to %s", before or "empty", after)
    return before, after


def pending_changes(url: str) -> list[Any]:
    """What autogenerate would write to bring the database to the models: empty when the
    schema matches (a model changed without a migration makes this non-empty)."""
    with _connection(url) as conn:
        context = MigrationContext.configure(connection=conn, opts=migration_options(conn))
        return list(compare_metadata(context, Base.metadata))


def new_revision(url: str, message: str) -> Path:
    """Autogenerate the next migration from the difference between ``url`` (migrated to
    head) and the models, for a developer to review; returns the new script's path."""
    head = head_revision()
    rev_id = f"{int(head) + 1:04d}" if head.isdigit() else None
    with _connection(url) as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        script = command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id)
    assert script is not None and not isinstance(script, list)
    return Path(script.path)
