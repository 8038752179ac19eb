"""Alembic migrations: a fresh database migrates to head on SQLite and PostgreSQL, and the
migrated schema is exactly the models' (a model change without a migration fails here)."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from pamcore import revisions, schema
from pamcore.errors import ConfigurationError
from pamcore.model import Base
from pamcore.storage import create_db_engine


def test_history_is_linear_and_head_is_the_newest_file() -> None:
    """Revisions are numbered files in one line (no branches), the newest being head."""
    files = sorted(p.name.split("_", 1)[0] for p in (schema.MIGRATIONS / "versions").glob("0*.py"))
    assert files == [f"{n:04d}" for n in range(1, len(files) + 1)]
    assert revisions.head_revision() == files[-1]
    assert (schema.MIGRATIONS / "script.py.mako").is_file()


def test_revisions_read_without_alembic_agree_with_alembic(empty_db_url: str) -> None:
    """The start-up check reads the scripts and the version table itself (no Alembic
    import); Alembic must see the same head and the same database revision."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    assert revisions.head_revision() == (
        ScriptDirectory.from_config(schema.alembic_config()).get_current_head()
    )
    schema.upgrade_database(empty_db_url, "0002")
    engine = create_db_engine(empty_db_url)
    try:
        with engine.connect() as conn:
            assert revisions.database_revision(conn) == "0002"
            assert MigrationContext.configure(conn).get_current_revision() == "0002"
    finally:
        engine.dispose()


def test_fresh_database_upgrades_to_head(empty_db_url: str) -> None:
    assert schema.current_revision(empty_db_url) is None

    before, after = schema.upgrade_database(empty_db_url)

    assert (before, after) == (None, revisions.head_revision())
    assert schema.current_revision(empty_db_url) == revisions.head_revision()
    engine = create_db_engine(empty_db_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert set(Base.metadata.tables) <= tables


def test_migrated_schema_matches_the_models(empty_db_url: str) -> None:
    schema.upgrade_database(empty_db_url)

    assert schema.pending_changes(empty_db_url) == []


def test_upgrade_twice_is_a_no_op(empty_db_url: str) -> None:
    schema.upgrade_database(empty_db_url)

    assert schema.upgrade_database(empty_db_url) == (revisions.head_revision(),) * 2


def test_drift_from_the_models_is_detected(empty_db_url: str) -> None:
    """The comparison really looks: a schema edited behind Alembic's back shows up."""
    schema.upgrade_database(empty_db_url)
    engine = create_db_engine(empty_db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP INDEX ix_audit_events_action"))
    finally:
        engine.dispose()

    changes = schema.pending_changes(empty_db_url)

    assert [c[0] for c in changes] == ["add_index"]
    assert changes[0][1].name == "ix_audit_events_action"


def test_schema_made_without_migrations_is_refused(db_url: str) -> None:
    """``db_url`` has the schema from ``create_all`` and no revision: migrating it would
    collide with the existing tables, so the message says what is wrong instead."""
    with pytest.raises(ConfigurationError, match="no migration revision"):
        schema.upgrade_database(db_url)


def test_unreachable_database_is_a_clear_error() -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    with pytest.raises(ConfigurationError, match="cannot open the database"):
        schema.current_revision(url)


def test_an_old_schema_is_refused_with_what_to_do(empty_db_url: str) -> None:
    from pamcore.errors import ConfigurationError
    from pamcore.revisions import require_current
    from pamcore.storage import create_db_engine

    engine = create_db_engine(empty_db_url)
    try:
        with pytest.raises(ConfigurationError, match="no pamcore schema yet; run 'pamcore init'"):
            require_current(engine)
        schema.upgrade_database(empty_db_url, "0001")
        with pytest.raises(ConfigurationError, match=r"at revision 0001 but this pamcore needs"):
            require_current(engine)
        schema.upgrade_database(empty_db_url)
        require_current(engine)  # current: no error
    finally:
        engine.dispose()


def test_downgrade_to_base_leaves_no_table_and_upgrades_again(empty_db_url: str) -> None:
    from alembic import command

    schema.upgrade_database(empty_db_url)
    command.downgrade(schema.alembic_config(empty_db_url), "base")
    engine = create_db_engine(empty_db_url)
    try:
        left = set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()
    assert left == set()
    schema.upgrade_database(empty_db_url)
    assert schema.current_revision(empty_db_url) == revisions.head_revision()
