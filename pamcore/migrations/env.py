"""Alembic environment: pamcore's models are the target; the URL (or an open connection)
comes from :mod:`pamcore.schema`, never from an ini file, so an installed wheel migrates."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from pamcore.schema import migration_options
from pamcore.storage import create_db_engine

config = context.config


def run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, **migration_options(connection))
    context.run_migrations()


def run_migrations_online() -> None:
    """Use the connection (and its transaction) :mod:`pamcore.schema` passes in, or open
    one from the URL it passes."""
    connection: Connection | None = config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
        return
    engine = create_db_engine(config.attributes["url"])
    try:
        with engine.begin() as connection:
            run_migrations(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("pamcore migrations run online only: use 'pamcore db upgrade'")
run_migrations_online()
