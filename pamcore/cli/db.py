"""``pamcore db``: the schema's revision, migrations, and a check that it matches the code."""

from __future__ import annotations

import click
from sqlalchemy.engine import make_url

from pamcore.cli.context import CliContext, pass_cli, with_json
from pamcore.cli.output import emit_message, emit_record
from pamcore.config import Config, load_config
from pamcore.errors import ConfigurationError
from pamcore.revisions import head_revision
from pamcore.schema import current_revision, new_revision, pending_changes, upgrade_database


def _config(cli: CliContext) -> Config:
    """The instance configuration without opening the core: these commands must work on a
    database that has no schema yet."""
    return load_config(cli.instance)


def _shown_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@click.group()
def db() -> None:
    """Database schema: upgrade, current revision, check."""


@db.command()
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@with_json
@pass_cli
def upgrade(cli: CliContext, revision: str) -> None:
    """Apply pending migrations (in one transaction)."""
    config = _config(cli)
    before, after = upgrade_database(config.database_url, revision)
    message = (
        f"database migrated from {before or 'empty'} to {after}"
        if before != after
        else f"database already at {after}"
    )
    emit_message(message, cli.as_json, before=before, after=after)


@db.command()
@with_json
@pass_cli
def current(cli: CliContext) -> None:
    """Show the database's revision and the newest one this pamcore ships."""
    config = _config(cli)
    revision = current_revision(config.database_url)
    head = head_revision()
    emit_record(
        {
            "database": _shown_url(config.database_url),
            "current": revision,
            "head": head,
            "up_to_date": revision == head,
        },
        cli.as_json,
    )


@db.command()
@with_json
@pass_cli
def check(cli: CliContext) -> None:
    """Exit non-zero when migrations are pending or the schema differs from the models."""
    config = _config(cli)
    revision = current_revision(config.database_url)
    head = head_revision()
    if revision != head:
        raise ConfigurationError(
            f"the database is at revision {revision or 'none (empty)'}, this pamcore needs "
            f"{head}; run 'pamcore db upgrade'"
        )
    changes = pending_changes(config.database_url)
    if changes:
        shown = "; ".join(_describe(c) for c in changes[:5])
        more = f" (and {len(changes) - 5} more)" if len(changes) > 5 else ""
        raise ConfigurationError(
            f"the database schema differs from the models in {len(changes)} place(s): "
            f"{shown}{more}; a model change needs a migration ('pamcore db revision')"
        )
    emit_message(f"database schema is up to date ({head})", cli.as_json, revision=head)


@db.command()
@click.option("-m", "--message", required=True, help="What the migration changes.")
@pass_cli
def revision(cli: CliContext, message: str) -> None:
    """For developers: write the next migration from the models' difference to a database
    at head (review it before committing)."""
    path = new_revision(_config(cli).database_url, message)
    click.echo(f"wrote {path}; review it, 'make format', then 'pamcore db upgrade'")


def _describe(change: object) -> str:
    """Alembic's diff tuples (``("add_index", Index)``) or lists of them, in a few words."""
    if isinstance(change, list):
        return ", ".join(_describe(c) for c in change)
    if isinstance(change, tuple) and change:
        target = next((getattr(x, "name", None) for x in change[1:] if hasattr(x, "name")), "")
        return f"{change[0]} {target}".strip()
    return str(change)
