"""``pamcore audit`` (list, verify) and ``pamcore vault`` (status, rotate-key)."""

from __future__ import annotations

from collections import Counter

import click
from sqlalchemy import select

from pamcore import audit as chain
from pamcore.cli.context import CliContext, pass_cli, with_json
from pamcore.cli.output import emit_message, emit_record, emit_rows
from pamcore.errors import AuditChainBroken
from pamcore.model import Secret
from pamcore.presenters import audit_row
from pamcore.services import audit_log
from pamcore.services.common import CONSOLE
from pamcore.vault import rotate_master_key


@click.group("audit")
def audit() -> None:
    """Read and verify the hash-chained audit log."""


@audit.command("list")
@click.option("--session", "session_id", type=int, help="Only this session's events.")
@click.option("--actor", help="Only events by this actor.")
@click.option("--action", help="Only actions starting with this (e.g. 'session.').")
@click.option("--limit", type=click.IntRange(1, audit_log.MAX_LIMIT), default=50, show_default=True)
@with_json
@pass_cli
def list_events(
    cli: CliContext, session_id: int | None, actor: str | None, action: str | None, limit: int
) -> None:
    """The newest events first."""
    wanted = audit_log.AuditFilter(
        actor=actor or "", action=action or "", session_id=session_id, limit=limit
    )
    with cli.core.reader() as db:
        rows = [audit_row(e) for e in audit_log.list_events(db, CONSOLE, wanted)]
    emit_rows(
        rows,
        ("id", "at", "actor", "action", "target", "session", "details"),
        cli.as_json,
        empty="no audit events",
    )


@audit.command("verify")
@with_json
@pass_cli
def verify(cli: CliContext) -> None:
    """Recompute the chain; name every edited, inserted or deleted event."""
    with cli.core.reader() as db:
        checked, problems = chain.verify_chain(db)
    if problems:
        if cli.as_json:
            emit_message(
                "audit chain broken", True, checked=checked, problems=[str(p) for p in problems]
            )
        else:
            for problem in problems:
                click.echo(f"BROKEN {problem}")
        raise AuditChainBroken(
            f"{len(problems)} problem(s) in {checked} events; the log was tampered with"
        )
    emit_message(
        f"audit chain intact: {checked} events verified", cli.as_json, checked=checked, problems=[]
    )


@click.group("vault")
def vault() -> None:
    """The vault's master key."""


@vault.command("status")
@with_json
@pass_cli
def status(cli: CliContext) -> None:
    """Which key is active and how many secrets each key protects."""
    core = cli.core
    with core.reader() as db:
        counts = Counter(db.scalars(select(Secret.key_id)))
    emit_record(
        {
            "active_key": core.vault.active.key_id,
            "secrets_by_key": dict(counts),
            "key_file": str(core.config.master_key_path),
        },
        cli.as_json,
    )


@vault.command("rotate-key")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_json
@pass_cli
def rotate_key(cli: CliContext, yes: bool) -> None:
    """Generate a new master key and re-encrypt every secret under it."""
    core = cli.core
    if not yes:
        click.confirm("Re-encrypt every secret under a new master key?", abort=True)
    old = core.vault.active.key_id
    with core.unit() as db:
        new_vault, count = rotate_master_key(core.vault, core.config.master_key_path, db)
        core.replace_vault(new_vault)
        core.audit(
            db,
            "system:cli",
            "vault.key_rotated",
            old_key=old,
            new_key=new_vault.active.key_id,
            secrets=count,
        )
    emit_message(
        f"master key rotated ({old} -> {new_vault.active.key_id}); "
        f"{count} secrets re-encrypted; back up {core.config.master_key_path}",
        cli.as_json,
        old_key=old,
        new_key=new_vault.active.key_id,
        secrets=count,
    )
