"""``pamcore audit``: list and verify the hash-chained audit log."""

from __future__ import annotations

import click

from pamcore import audit as chain
from pamcore.cli.context import CliContext, pass_cli, with_json
from pamcore.cli.output import emit_message, emit_rows
from pamcore.errors import AuditChainBroken
from pamcore.presenters import audit_row
from pamcore.services import audit_log
from pamcore.services.common import CONSOLE


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
